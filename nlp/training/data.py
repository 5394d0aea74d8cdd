"""Readers for the public training and evaluation data under ``../shared/data``."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from nlp.errors import InputError

SENTIMENT_LABELS = ("negative", "neutral", "positive")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


@dataclass(frozen=True)
class LabelledText:
    """One labelled example."""

    id: str
    text: str
    label: str


def _unescape(text: str) -> str:
    # The 2013/2015 files hold literal JSON escapes such as "\u2019" (see the data README).
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def normalise_for_match(text: str) -> str:
    """A key for finding the same tweet in two files (case, spacing and escapes ignored)."""
    return " ".join(_unescape(text).lower().split())


def read_semeval2017(data_dir: Path) -> list[LabelledText]:
    """All of semeval2017_task4a's tsv files, deduplicated by tweet id.

    Ids that occur with conflicting labels are dropped: nobody can say which label is right.
    Files are read with quoting off (some texts are wrapped in double quotes).
    """
    folder = data_dir / "semeval2017_task4a"
    files = sorted(folder.glob("*.tsv"))
    if not files:
        raise InputError(f"no semeval2017_task4a/*.tsv under {data_dir}")
    rows: dict[str, LabelledText] = {}
    conflicting: set[str] = set()
    for path in files:
        with path.open(encoding="utf-8", newline="") as handle:
            for fields in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(fields) < 3:
                    continue
                tweet_id, label, text = fields[0], fields[1].strip(), _unescape(fields[2]).strip()
                if label not in SENTIMENT_LABELS or not text:
                    continue
                seen = rows.get(tweet_id)
                if seen is not None and seen.label != label:
                    conflicting.add(tweet_id)
                rows.setdefault(tweet_id, LabelledText(tweet_id, text, label))
    return [row for key, row in rows.items() if key not in conflicting]


def read_tweeteval(data_dir: Path, task: str, split: str) -> list[LabelledText]:
    """A TweetEval split (``{split}_text.txt`` + ``{split}_labels.txt`` + ``mapping.txt``)."""
    folder = data_dir / "tweeteval" / "datasets" / task
    mapping_path = folder / "mapping.txt"
    if not mapping_path.is_file():
        raise InputError(f"no tweeteval/datasets/{task}/mapping.txt under {data_dir}")
    mapping = dict(
        line.split("\t", 1) for line in mapping_path.read_text().splitlines() if line.strip()
    )
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = (folder / f"{split}_labels.txt").read_text().split()
    if len(texts) != len(labels):
        raise InputError(f"tweeteval {task}/{split}: {len(texts)} texts, {len(labels)} labels")
    return [
        LabelledText(f"{split}-{i}", text.strip(), mapping[label].strip())
        for i, (text, label) in enumerate(zip(texts, labels, strict=True))
    ]


# GoEmotions' sentiment grouping (data/group/labels.txt): ambiguous, negative, neutral, positive.
_GOEMOTIONS_GROUPS = {1: "negative", 2: "neutral", 3: "positive"}


def read_goemotions_sentiment(data_dir: Path, split: str) -> list[LabelledText]:
    """GoEmotions Reddit comments with one sentiment group, as negative / neutral / positive.

    Comments in the "ambiguous" group (surprise, confusion, curiosity, realization) or in
    more than one group (annotators heard mixed feelings) are left out.
    """
    path = data_dir / "goemotions" / "data" / "group" / f"{split}.tsv"
    if not path.is_file():
        raise InputError(f"missing data file {path}")
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for fields in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(fields) < 3:
                continue
            groups = {int(x) for x in fields[1].split(",") if x.strip()}
            if len(groups) == 1 and (group := groups.pop()) in _GOEMOTIONS_GROUPS:
                rows.append(LabelledText(fields[2], fields[0], _GOEMOTIONS_GROUPS[group]))
    return rows
