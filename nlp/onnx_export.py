"""Export the shared encoder to ONNX (fp32 + int8 per-channel) and prove the export faithful.

Called at set-up time (``models/assemble.py``), never at request time. The exported graph
returns the token-level last hidden state, because the analyzer pools sentence vectors and
the text vector from the same token states (one encoder pass per text).

A fine-tuned encoder ships as a small adapter (``adapter.npz``): low-rank deltas
``<param>::lora_A`` / ``<param>::lora_B`` (merged as ``W += scaling * B @ A``) and full
replacements ``<param>::full`` for small tensors (LayerNorms, biases). It is merged into the
pinned base weights here, so serving never needs the training code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nlp.errors import ExportError

MODEL_FILENAME = "model.onnx"
INT8_FILENAME = "model.int8.onnx"
EXPORT_INFO_FILENAME = "export_info.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "config.json",
)
MIN_COSINE = 0.98
# Fixed, varied sentences (short, long, negative, emoji-ish, numbers) for the faithfulness check.
CHECK_SENTENCES = (
    "I have been waiting on hold for two hours and nobody answers.",
    "Thanks a lot, the new app update is really great!",
    "My card was charged twice for the same order #4711.",
    "Great, another delayed flight. Just perfect.",
    "The parcel arrived on Tuesday.",
    "Can you tell me how to reset my password? I tried the link in the email but it "
    "says the token expired, and the support chat keeps closing before anyone replies.",
)


def _mean_pool(states: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    weights = mask[..., None].astype(np.float32)
    summed = (states * weights).sum(axis=1)
    pooled: npt.NDArray[Any] = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    return pooled


def _cosines(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[Any]:
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    result: npt.NDArray[Any] = num / np.clip(den, 1e-12, None)
    return result


def adapter_file(adapter: Path) -> Path:
    """The adapter.npz of an adapter given as the file or its directory."""
    return adapter / "adapter.npz" if adapter.is_dir() else adapter


def adapter_sha256(adapter: Path) -> str:
    """sha256 of the adapter file: heads trained with an adapter record it, the analyzer checks."""
    return hashlib.sha256(adapter_file(adapter).read_bytes()).hexdigest()


def merge_adapter(model: Any, adapter: Path) -> int:
    """Merge an ``adapter.npz`` (file or directory holding it) into a torch model in place.

    Returns:
        The number of parameters changed.
    """
    import torch

    path = adapter_file(adapter)
    if not path.is_file():
        raise ExportError(f"adapter {path} not found")
    params = dict(model.named_parameters())
    changed = 0
    with np.load(path) as data:
        scaling = float(data["scaling"]) if "scaling" in data.files else 1.0
        for key in data.files:
            if key == "scaling":
                continue
            name, _, kind = key.rpartition("::")
            if name not in params:
                raise ExportError(f"adapter {path}: {name!r} is not a parameter of the encoder")
            target = params[name]
            with torch.no_grad():
                if kind == "full":
                    target.copy_(torch.from_numpy(data[key]))
                elif kind == "lora_A":
                    lora_b = torch.from_numpy(data[f"{name}::lora_B"])
                    lora_a = torch.from_numpy(data[key])
                    target.add_(scaling * (lora_b @ lora_a))
                elif kind == "lora_B":
                    continue  # merged together with its lora_A
                else:
                    raise ExportError(f"adapter {path}: unknown entry kind {kind!r} in {key!r}")
            changed += 1
    return changed


def load_torch_encoder(src_dir: Path, adapter: Path | None = None) -> Any:
    """The Hugging Face encoder from a local directory (never a hub), adapter merged, eval mode."""
    from transformers import AutoModel

    try:
        # Eager attention traces to plain MatMul/Softmax, which the int8 quantiser handles.
        model = AutoModel.from_pretrained(
            str(src_dir), local_files_only=True, attn_implementation="eager"
        )
    except (OSError, ValueError) as e:
        raise ExportError(f"cannot load a Hugging Face encoder from {src_dir}: {e}") from e
    if adapter is not None:
        merge_adapter(model, adapter)
    model.eval()
    return model


def _torch_pooled(model: Any, batch: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[Any]:
    import torch

    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
    states = out.last_hidden_state.numpy()
    return _mean_pool(states, batch["attention_mask"])


def _onnx_pooled(path: Path, batch: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    (states,) = session.run(None, {k: v for k, v in batch.items() if k in names})
    return _mean_pool(np.asarray(states), batch["attention_mask"])


def _check_batch(out_dir: Path) -> dict[str, npt.NDArray[np.int64]]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a vocabulary entry
    tokenizer.enable_truncation(max_length=128)
    encodings = tokenizer.encode_batch(list(CHECK_SENTENCES))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def _hidden_states_module(model: Any) -> Any:
    import torch

    class HiddenStates(torch.nn.Module):
        """Positional inputs -> last hidden state (transformers 5 reorders forward's args)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    return HiddenStates()


def export_encoder(
    src_dir: Path,
    out_dir: Path,
    *,
    adapter: Path | None = None,
    min_cosine: float = MIN_COSINE,
    opset: int = 17,
) -> list[Path]:
    """Export a Hugging Face encoder to ONNX fp32 and int8, checking faithfulness.

    Args:
        src_dir: Hugging Face-format encoder directory (config.json, weights, tokenizer.json).
        out_dir: where model.onnx, model.int8.onnx, the tokenizer files and
            export_info.json are written (created if missing).
        adapter: optional trained adapter (``adapter.npz`` or its directory) merged first.
        min_cosine: the lowest accepted cosine between int8 ONNX and torch fp32 mean-pooled
            vectors on fixed sentences; below it the export fails with ExportError.
        opset: ONNX opset of the exported graph.

    Returns:
        The files written.
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not (src_dir / "tokenizer.json").is_file():
        raise ExportError(f"{src_dir} has no tokenizer.json (a fast tokenizer is required)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in TOKENIZER_FILES:
        if (src_dir / name).is_file():
            shutil.copyfile(src_dir / name, out_dir / name)
            written.append(out_dir / name)

    model = load_torch_encoder(src_dir, adapter)
    batch = _check_batch(out_dir)
    # The reference comes first: after tracing, transformers 5's model returns different
    # states (the tracer leaves its mask code in a traced mode), so it would not be a reference.
    reference = _torch_pooled(model, batch)
    fp32_path, int8_path = out_dir / MODEL_FILENAME, out_dir / INT8_FILENAME
    # The trace sample must contain padding: transformers skips building the attention mask
    # when every mask entry is 1, and a trace of that path would ignore padding forever.
    sample = tuple(torch.from_numpy(batch[k]) for k in batch)
    if bool(batch["attention_mask"].all()):
        raise ExportError("the trace sample needs padded rows")
    axes = {0: "batch", 1: "sequence"}
    try:
        # The TorchScript exporter works offline without onnxscript (not installed here).
        torch.onnx.export(
            _hidden_states_module(model),
            sample,
            str(fp32_path),
            input_names=list(batch),
            output_names=["last_hidden_state"],
            dynamic_axes={**{k: axes for k in batch}, "last_hidden_state": axes},
            opset_version=opset,
            dynamo=False,
        )
        # Only the weight MatMuls: int8 embeddings (Gather) cost ~0.01 cosine on short
        # texts for no speed gain, and activation-by-activation MatMuls must stay float.
        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True},
        )
    except Exception as e:  # the exporters raise many unrelated types
        raise ExportError(f"ONNX export of {src_dir} failed: {e}") from e
    written += [fp32_path, int8_path]

    fp32_cos = float(_cosines(reference, _onnx_pooled(fp32_path, batch)).min())
    int8_cos = float(_cosines(reference, _onnx_pooled(int8_path, batch)).min())
    if fp32_cos < 0.999 or int8_cos < min_cosine:
        raise ExportError(
            f"ONNX export of {src_dir} is not faithful to torch fp32: minimum cosine "
            f"fp32 {fp32_cos:.4f} (need 0.999), int8 {int8_cos:.4f} (need {min_cosine})"
        )
    info = {
        "source": str(src_dir),
        "adapter": str(adapter) if adapter else None,
        "adapter_sha256": adapter_sha256(adapter) if adapter else None,
        "opset": opset,
        "min_cosine_fp32": round(fp32_cos, 5),
        "min_cosine_int8": round(int8_cos, 5),
        "check_sentences": len(CHECK_SENTENCES),
    }
    info_path = out_dir / EXPORT_INFO_FILENAME
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    written.append(info_path)
    return written
