"""The encoder: ONNX faithfulness, pooling over spans, chunking of long texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlp.encoder import Encoder, EncoderOptions
from nlp.errors import ExportError

SENTENCES = [
    "I have been on hold for forty minutes and still no answer.",
    "The refund finally arrived, thank you so much for sorting it out!",
    "My package was delivered to the wrong address again.",
    "Where can I change the billing address on my account?",
    "Great, another delayed flight. Just perfect.",
    "The technician was friendly and fixed the router in ten minutes.",
    "You charged me twice and your chat bot keeps closing the conversation.",
    "Store opens at 9am on Sundays.",
    "worst. service. ever.",
    "lol this app crashed 3 times today smh",
    "Could you please send me a copy of my last invoice?",
    "I love the new update, the dark mode looks amazing",
]


def _units(encoder: Encoder, texts: list[str]) -> np.ndarray:
    return np.stack([e.text_unit for e in encoder.encode(texts)])


class TestFaithfulness:
    def test_int8_onnx_matches_torch(
        self, encoder: Encoder, encoder_dir: Path, adapter: Path | None
    ) -> None:
        """int8 ONNX text vectors stay within cosine 0.98 of torch fp32 on real sentences."""
        torch_encoder = Encoder(encoder_dir, EncoderOptions(runtime="torch"), adapter=adapter)
        cosines = (_units(encoder, SENTENCES) * _units(torch_encoder, SENTENCES)).sum(axis=1)
        assert cosines.mean() >= 0.98
        assert cosines.min() >= 0.97

    def test_fp32_onnx_equals_torch(
        self, onnx_dir: Path, encoder_dir: Path, adapter: Path | None
    ) -> None:
        """The fp32 ONNX export (adapter merged, if any) computes what torch computes."""
        onnx = Encoder(onnx_dir, EncoderOptions(runtime="onnx"))
        torch_encoder = Encoder(encoder_dir, EncoderOptions(runtime="torch"), adapter=adapter)
        cosines = (_units(onnx, SENTENCES) * _units(torch_encoder, SENTENCES)).sum(axis=1)
        assert cosines.min() >= 0.999


class TestEncode:
    def test_batched_equals_one_by_one(self, onnx_dir: Path) -> None:
        """Padding and length-sorting do not change any text's vector."""
        encoder = Encoder(onnx_dir, EncoderOptions(runtime="onnx", batch_size=5))
        batched = _units(encoder, SENTENCES)
        single = np.stack([_units(encoder, [s])[0] for s in SENTENCES])
        assert np.allclose(batched, single, atol=1e-4)

    def test_span_vector_is_close_to_the_sentence_alone(self, encoder: Encoder) -> None:
        """A sentence pooled inside its text is nearer that sentence than the other one."""
        first, second = SENTENCES[0], SENTENCES[1]
        text = f"{first} {second}"
        spans = [(0, len(first)), (len(first) + 1, len(text))]
        (encoding,) = encoder.encode([text], [spans])
        alone = _units(encoder, [first, second])
        sims = encoding.span_units @ alone.T
        assert sims[0, 0] > sims[0, 1]
        assert sims[1, 1] > sims[1, 0]
        assert sims[0, 0] > 0.7
        assert sims[1, 1] > 0.7

    def test_long_text_is_chunked(self, onnx_dir: Path) -> None:
        """A text longer than max_length runs in several windows, with every sentence pooled."""
        encoder = Encoder(onnx_dir, EncoderOptions(max_length=32, batch_size=64))
        text = " ".join(SENTENCES * 3)
        starts = [text.index(s) for s in SENTENCES]
        spans = [(s, s + len(t)) for s, t in zip(starts, SENTENCES, strict=True)]
        (encoding,) = encoder.encode([text], [spans])
        assert encoding.n_windows == -(-encoding.n_tokens // 30)
        assert encoding.n_windows > 5
        assert encoding.span_vectors.shape == (len(SENTENCES), encoder.dim)
        assert np.isfinite(encoding.text_vector).all()
        # Each sentence's vector stays recognisably that sentence.
        alone = _units(encoder, SENTENCES)
        sims = encoding.span_units @ alone.T
        assert (sims.argmax(axis=1) == np.arange(len(SENTENCES))).mean() >= 0.9

    def test_one_forward_per_batch(self, onnx_dir: Path) -> None:
        """Encoding N short texts costs ceil(N / batch_size) forward calls."""
        encoder = Encoder(onnx_dir, EncoderOptions(batch_size=8))
        assert encoder.forward_calls == 0
        encoder.encode(SENTENCES)
        assert encoder.forward_calls == 2

    def test_empty_text(self, encoder: Encoder) -> None:
        """An empty string still gets a finite vector."""
        (encoding,) = encoder.encode([""])
        assert encoding.n_tokens == 0
        assert np.isfinite(encoding.text_vector).all()


class TestAdapter:
    def test_adapter_changes_the_encoder_and_is_recorded(
        self, encoder_dir: Path, tmp_path: Path
    ) -> None:
        """A merged low-rank adapter changes the vectors, and its sha256 is recorded."""
        rng = np.random.default_rng(0)
        name = "encoder.layer.5.output.dense.weight"
        path = tmp_path / "adapter.npz"
        np.savez(
            path,
            scaling=np.float32(1.0),
            **{
                f"{name}::lora_A": rng.normal(size=(4, 1536)).astype(np.float32),
                f"{name}::lora_B": rng.normal(size=(384, 4)).astype(np.float32) * 0.05,
            },
        )
        base = Encoder(encoder_dir, EncoderOptions(runtime="torch"))
        adapted = Encoder(encoder_dir, EncoderOptions(runtime="torch"), adapter=path)
        assert base.adapter_sha256 is None
        assert adapted.adapter_sha256 is not None
        cosines = (_units(base, SENTENCES) * _units(adapted, SENTENCES)).sum(axis=1)
        assert cosines.max() < 0.999

    def test_adapter_for_another_model_is_refused(self, encoder_dir: Path, tmp_path: Path) -> None:
        """An adapter naming a parameter the encoder lacks fails with the parameter's name."""
        path = tmp_path / "adapter.npz"
        np.savez(path, **{"no.such.weight::full": np.zeros(3, np.float32)})
        with pytest.raises(ExportError, match=r"no\.such\.weight"):
            Encoder(encoder_dir, EncoderOptions(runtime="torch"), adapter=path)
