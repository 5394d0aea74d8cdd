"""The shared sentence encoder: one forward pass per text feeds every head and the taxonomy.

Inference is split as pre (tokenise with offsets, cut long texts into windows), core (one
forward per batch of windows, sorted by length to cut padding) and post (mean-pool the token
states over the whole text and over each requested character span). Pooling matches
sentence-transformers' mean pooling, so the text vector of a short text is the vector
sentence-transformers computes for it (before its final normalisation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from nlp.errors import ModelLoadError

Runtime = Literal["onnx-int8", "onnx", "torch"]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Span = tuple[int, int]
_ONNX_FILES: dict[str, str] = {"onnx-int8": "model.int8.onnx", "onnx": "model.onnx"}


@dataclass(frozen=True)
class EncoderOptions:
    """How the encoder runs.

    runtime: ONNX Runtime with the int8 model (default), the fp32 ONNX model, or torch.
    max_length: tokens per forward window, special tokens included; longer texts are cut
        into consecutive windows (each token is encoded once, in exactly one window).
    batch_size: windows per forward call.
    threads: intra-op threads (0: the runtime's default).
    warmup: run one tiny forward at load, so the first request does not pay for it.
    spin: let ONNX Runtime's idle threads busy-wait; off by default because on shared
        cores (spaCy, other workers) spinning threads steal the CPU the others need.
    """

    runtime: Runtime = "onnx-int8"
    max_length: int = 256
    batch_size: int = 32
    threads: int = 0
    warmup: bool = True
    spin: bool = False


@dataclass(frozen=True)
class Tokenized:
    """One text's content tokens (no special tokens) and their character offsets."""

    ids: IntArray
    offsets: IntArray  # shape (n, 2): start, end in the text


@dataclass(frozen=True)
class Encoding:
    """Pooled vectors of one text: the whole text and each requested span."""

    text_vector: FloatArray  # shape (dim,)
    span_vectors: FloatArray  # shape (spans, dim); a span without tokens gets the text vector
    n_tokens: int
    n_windows: int

    @property
    def text_unit(self) -> FloatArray:
        """The L2-normalised text vector (what sentence-transformers returns)."""
        unit: FloatArray = l2_normalize(self.text_vector[None, :])[0]
        return unit

    @property
    def span_units(self) -> FloatArray:
        """The L2-normalised span vectors."""
        return l2_normalize(self.span_vectors)


def l2_normalize(vectors: FloatArray) -> FloatArray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: FloatArray = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return result


@dataclass
class _Window:
    text_index: int
    ids: IntArray  # with special tokens
    states: FloatArray | None = field(default=None)


class Encoder:
    """A transformer encoder returning token states, pooled per text and per span."""

    def __init__(
        self,
        model_dir: Path,
        options: EncoderOptions | None = None,
        *,
        name: str = "",
        adapter: Path | None = None,
    ):
        """Load the tokenizer and the model from ``model_dir``.

        Args:
            model_dir: for the ONNX runtimes the exported directory (model.onnx,
                model.int8.onnx, tokenizer.json); for torch a Hugging Face encoder directory.
            options: runtime options.
            name: the encoder's name and version for `model_versions` (default: the
                directory name).
            adapter: torch runtime only: a trained adapter (adapter.npz) merged at load.
                The ONNX runtimes read which adapter was merged from export_info.json.
        """
        from tokenizers import Tokenizer

        self.options = options or EncoderOptions()
        self.model_dir = Path(model_dir)
        self.runtime: Runtime = self.options.runtime
        self.name = name or self.model_dir.name
        self.forward_calls = 0
        # sha256 of the adapter merged into these weights (None: the base model).
        self.adapter_sha256: str | None = None
        self._adapter = adapter
        if adapter is not None and self.runtime != "torch":
            raise ValueError("an adapter is merged at export time for the ONNX runtimes")
        tokenizer_path = self.model_dir / "tokenizer.json"
        if not tokenizer_path.is_file():
            raise ModelLoadError(f"{self.model_dir} has no tokenizer.json")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer.json may carry truncation/padding; windows are cut here instead.
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        specials = self._tokenizer.encode("", add_special_tokens=True).ids
        self._prefix = np.array(specials[:1], dtype=np.int64)
        self._suffix = np.array(specials[1:], dtype=np.int64)
        self._pad_id = self._pad_token_id()
        if self.options.max_length < len(specials) + 1:
            raise ValueError("max_length leaves no room for content tokens")
        self._session: Any = None
        self._torch_model: Any = None
        self._load_model()
        if self.options.warmup:
            self.forward(np.array([[*specials]], dtype=np.int64), np.ones((1, 2), np.int64))
            self.forward_calls = 0
        self.dim = self._dim()

    def _pad_token_id(self) -> int:
        config = self.model_dir / "config.json"
        if config.is_file():
            pad = json.loads(config.read_text()).get("pad_token_id")
            if isinstance(pad, int):
                return pad
        return 0

    def _load_model(self) -> None:
        if self.runtime == "torch":
            import torch
            from transformers import AutoModel

            if self.options.threads:
                torch.set_num_threads(self.options.threads)
            try:
                self._torch_model = AutoModel.from_pretrained(
                    str(self.model_dir), local_files_only=True
                ).eval()
            except (OSError, ValueError) as e:
                raise ModelLoadError(f"cannot load a torch encoder from {self.model_dir}") from e
            if self._adapter is not None:
                from nlp.onnx_export import adapter_sha256, merge_adapter

                merge_adapter(self._torch_model, self._adapter)
                self.adapter_sha256 = adapter_sha256(self._adapter)
            return
        import onnxruntime as ort

        path = self.model_dir / _ONNX_FILES[self.runtime]
        if not path.is_file():
            raise ModelLoadError(
                f"{path} is missing: export the encoder first (`undertone models setup`)"
            )
        session_options = ort.SessionOptions()
        spin = "1" if self.options.spin else "0"
        session_options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        session_options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        if self.options.threads:
            session_options.intra_op_num_threads = self.options.threads
            session_options.inter_op_num_threads = 1
        info = self.model_dir / "export_info.json"
        if info.is_file():
            self.adapter_sha256 = json.loads(info.read_text()).get("adapter_sha256")
        self._session = ort.InferenceSession(
            str(path), session_options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self._session.get_inputs()}

    def _dim(self) -> int:
        states = self.forward(np.array([[*self._prefix, *self._suffix]]), np.ones((1, 2), np.int64))
        self.forward_calls -= 1
        return int(states.shape[-1])

    # -- pre ----------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[Tokenized]:
        """Content token ids and character offsets of each text (fast tokenizer, batched)."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [
            Tokenized(
                ids=np.asarray(e.ids, dtype=np.int64),
                offsets=np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2),
            )
            for e in encodings
        ]

    def _windows(self, tokenized: Sequence[Tokenized]) -> list[_Window]:
        room = self.options.max_length - len(self._prefix) - len(self._suffix)
        windows: list[_Window] = []
        for index, tok in enumerate(tokenized):
            starts = range(0, max(len(tok.ids), 1), room)
            for start in starts:
                ids = np.concatenate([self._prefix, tok.ids[start : start + room], self._suffix])
                windows.append(_Window(index, ids))
        return windows

    # -- core ---------------------------------------------------------------------------------
    def forward(self, input_ids: IntArray, attention_mask: IntArray) -> FloatArray:
        """One forward pass: token states of shape (batch, sequence, dim)."""
        self.forward_calls += 1
        input_ids = np.asarray(input_ids, dtype=np.int64)
        attention_mask = np.asarray(attention_mask, dtype=np.int64)
        token_type_ids = np.zeros_like(input_ids)
        if self._session is not None:
            feeds = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
            }
            (states,) = self._session.run(
                None, {k: v for k, v in feeds.items() if k in self._input_names}
            )
            return np.asarray(states, dtype=np.float32)
        import torch

        with torch.inference_mode():
            out = self._torch_model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
                token_type_ids=torch.from_numpy(token_type_ids),
            )
        return np.asarray(out.last_hidden_state.numpy(), dtype=np.float32)

    def _run_windows(self, windows: list[_Window]) -> None:
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].ids))
        size = self.options.batch_size
        for first in range(0, len(order), size):
            batch = [windows[i] for i in order[first : first + size]]
            longest = max(len(w.ids) for w in batch)
            ids = np.full((len(batch), longest), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for row, window in enumerate(batch):
                ids[row, : len(window.ids)] = window.ids
                mask[row, : len(window.ids)] = 1
            states = self.forward(ids, mask)
            for row, window in enumerate(batch):
                window.states = states[row, : len(window.ids)]

    # -- post ---------------------------------------------------------------------------------
    def encode(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]] | None = None
    ) -> list[Encoding]:
        """Encode texts in one pass: a pooled vector per text and per character span.

        Args:
            texts: the texts.
            spans: per text, character spans (e.g. sentences) to pool; None for none.

        Returns:
            One Encoding per text, in input order.
        """
        if spans is not None and len(spans) != len(texts):
            raise ValueError("spans must have one entry per text")
        tokenized = self.tokenize(texts)
        windows = self._windows(tokenized)
        self._run_windows(windows)
        by_text: list[list[FloatArray]] = [[] for _ in texts]
        for window in windows:
            assert window.states is not None
            by_text[window.text_index].append(window.states)
        n_pre, n_suf = len(self._prefix), len(self._suffix)
        results: list[Encoding] = []
        for index, tok in enumerate(tokenized):
            parts = by_text[index]
            # The text vector pools every position, special tokens included, exactly like
            # sentence-transformers does for a text that fits one window.
            all_states = np.concatenate(parts, axis=0)
            text_vector = all_states.mean(axis=0).astype(np.float32)
            content = np.concatenate([p[n_pre : len(p) - n_suf] for p in parts], axis=0)
            content = content[: len(tok.ids)]
            wanted = spans[index] if spans is not None else ()
            span_vectors = np.empty((len(wanted), text_vector.shape[0]), dtype=np.float32)
            for row, (start, end) in enumerate(wanted):
                inside = (tok.offsets[:, 0] < end) & (tok.offsets[:, 1] > start)
                span_vectors[row] = content[inside].mean(axis=0) if inside.any() else text_vector
            results.append(Encoding(text_vector, span_vectors, len(tok.ids), len(parts)))
        return results
