"""Training-data readers on small files written here (the shared data is not needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp.errors import InputError
from nlp.training.data import read_goemotions_sentiment


def test_goemotions_sentiment_groups(tmp_path: Path) -> None:
    """One group of negative/neutral/positive is kept; ambiguous and mixed comments are not."""
    folder = tmp_path / "goemotions" / "data" / "group"
    folder.mkdir(parents=True)
    rows = [
        ("Thank you so much, that fixed it!", "3", "a1"),
        ("This is the third time it broke.", "1", "a2"),
        ("The store opens at nine.", "2", "a3"),
        ("Wait, what happened here?", "0", "a4"),  # ambiguous
        ("Great news but I am still annoyed.", "1,3", "a5"),  # mixed
        ('He said "fine" and left.', "1", "a6"),  # a quote stays in the text
    ]
    (folder / "train.tsv").write_text(
        "".join("\t".join(row) + "\n" for row in rows), encoding="utf-8"
    )
    got = read_goemotions_sentiment(tmp_path, "train")
    assert [(r.id, r.label) for r in got] == [
        ("a1", "positive"),
        ("a2", "negative"),
        ("a3", "neutral"),
        ("a6", "negative"),
    ]
    assert got[-1].text == 'He said "fine" and left.'
    with pytest.raises(InputError, match=r"dev\.tsv"):
        read_goemotions_sentiment(tmp_path, "dev")
