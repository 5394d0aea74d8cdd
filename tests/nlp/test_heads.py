"""Head kinds and loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nlp.errors import ModelLoadError
from nlp.heads import Head, head_kinds, load_heads


def _write(directory: Path, meta: dict[str, object], weights: dict[str, np.ndarray]) -> Path:
    directory.mkdir(parents=True)
    (directory / "meta.json").write_text(json.dumps(meta))
    np.savez(directory / "weights.npz", **weights)
    return directory


class TestHeads:
    def test_registered_kinds(self) -> None:
        """Softmax, sigmoid and regression heads are available for issue 3's heads."""
        assert {"softmax", "sigmoid", "regression"} <= set(head_kinds())

    def test_softmax_rows_are_distributions(self, tmp_path: Path) -> None:
        """A softmax head gives probabilities that sum to one, with an MLP in front."""
        rng = np.random.default_rng(0)
        meta = {"name": "s", "version": "s.v1", "kind": "softmax", "labels": ["a", "b", "c"]}
        weights = {
            "W0": rng.normal(size=(4, 8)),
            "b0": np.zeros(8),
            "W1": rng.normal(size=(8, 3)),
            "b1": np.zeros(3),
        }
        head = Head.load(_write(tmp_path / "s", meta, weights))
        probs = head.predict(rng.normal(size=(5, 4)).astype(np.float32))
        assert probs.shape == (5, 3)
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    def test_sigmoid_and_regression(self, tmp_path: Path) -> None:
        """Sigmoid scores lie in (0, 1); regression values are clipped to the range."""
        base = {"version": "x.v1", "labels": ["p", "q"]}
        weights = {"W0": np.eye(2) * 100, "b0": np.zeros(2)}
        _write(tmp_path / "m", {**base, "name": "m", "kind": "sigmoid"}, weights)
        regression = {**base, "name": "r", "kind": "regression", "range": [0, 1]}
        _write(tmp_path / "r", regression, weights)
        heads = load_heads(tmp_path)
        x = np.array([[1.0, -1.0]], dtype=np.float32)
        assert heads["m"].predict(x)[0].round(3).tolist() == [1.0, 0.0]
        assert heads["r"].predict(x)[0].tolist() == [1.0, 0.0]

    def test_label_count_must_match(self, tmp_path: Path) -> None:
        """A head whose output size differs from its labels is refused at load."""
        meta = {"name": "bad", "version": "bad.v1", "kind": "softmax", "labels": ["a", "b"]}
        _write(tmp_path / "bad", meta, {"W0": np.zeros((4, 3)), "b0": np.zeros(3)})
        with pytest.raises(ModelLoadError, match="3 outputs for 2 labels"):
            load_heads(tmp_path)

    def test_committed_sentiment_head(self) -> None:
        """The shipped sentiment head loads, versioned, with its metrics recorded."""
        heads = load_heads(Path(__file__).resolve().parents[2] / "models" / "heads")
        meta = heads["sentiment"].meta
        assert meta.version.startswith("sentiment.v")
        assert meta.labels == ("negative", "neutral", "positive")
        assert "macro_recall" in meta.extra["metrics"]["tweeteval_sentiment_val"]
