"""The bagged ensemble folded into one head: same outputs as its members, served as a Head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nlp.heads import Head
from nlp.training.affect_common import (
    MlpOptions,
    holdout_rows,
    mlp_raw,
    train_mlp,
    train_mlp_bagged,
)
from nlp.training.common import write_head

OPTIONS = MlpOptions(hidden=16, epochs=5, batch_size=32, loss="mse", dropout=0.1)


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(300, 8)).astype(np.float32)
    x[:, 3] = 0.25  # a constant input, as some pooled encoder dimensions are
    y = np.stack([np.tanh(x[:, 0] - x[:, 1]), np.sin(x[:, 2])], axis=1).astype(np.float32)
    return x, y, np.ones_like(y), np.ones(len(x), np.float32)


def test_folded_ensemble_is_the_mean_of_its_members() -> None:
    """Members trained alone with the same seeds and held-out slices average to the fold."""
    x, y, mask, weight = _data()
    folded, members = train_mlp_bagged(x, y, mask, weight, OPTIONS, seed=5, members=3)
    assert [m["seed"] for m in members] == [5, 6, 7]
    alone = [
        train_mlp(x, y, mask, weight, holdout_rows(len(x), seed), OPTIONS, seed)[0]
        for seed in (5, 6, 7)
    ]
    expected = np.mean([mlp_raw(w, x) for w in alone], axis=0)
    assert folded["W0"].shape == (8, 16 * 3)
    assert np.all(folded["W0"][3] == 0.0)  # the constant input's row is left out
    np.testing.assert_allclose(mlp_raw(folded, x), expected, atol=1e-4)


def test_member_temperatures_are_folded_into_the_last_layer() -> None:
    """With a temperature per member, the fold averages logits / temperature."""
    x, y, mask, weight = _data()
    folded, members = train_mlp_bagged(
        x, y, mask, weight, OPTIONS, seed=5, members=2, calibrate=lambda logits, rows: 2.0
    )
    plain, _ = train_mlp_bagged(x, y, mask, weight, OPTIONS, seed=5, members=2)
    assert all(m["temperature"] == 2.0 for m in members)
    np.testing.assert_allclose(mlp_raw(folded, x), mlp_raw(plain, x) / 2.0, atol=1e-5)


def test_the_fold_serves_as_a_float16_head(tmp_path: Path) -> None:
    """Written in float16 and loaded by nlp.heads, the fold gives the trained outputs."""
    x, y, mask, weight = _data()
    folded, _ = train_mlp_bagged(x, y, mask, weight, OPTIONS, seed=5, members=3)
    meta = {"name": "t", "version": "t.v1", "kind": "regression", "labels": ["a", "b"]}
    write_head(tmp_path / "t", folded, meta, dtype=np.float16)
    with np.load(tmp_path / "t" / "weights.npz") as stored:
        assert all(stored[k].dtype == np.float16 for k in stored.files)
        assert all(np.isfinite(stored[k]).all() for k in stored.files)
    head = Head.load(tmp_path / "t")
    assert json.loads((tmp_path / "t" / "meta.json").read_text())["version"] == "t.v1"
    np.testing.assert_allclose(head.raw(x), mlp_raw(folded, x), atol=0.02)
