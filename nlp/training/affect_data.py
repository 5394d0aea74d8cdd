"""Readers for the affect data sets (emotions, intensity, irony) under ``../shared/data``.

Every reader returns plain rows; which rows train which head label is decided in the
training modules. ``overlap_key`` finds the same tweet across data sets that were
preprocessed differently (TweetEval replaced user names by ``@user`` and removed the irony
hashtags), so that a text we report on never trains.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from nlp.errors import InputError

GOEMOTIONS_LABELS = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)  # fmt: skip
EC_LABELS = (
    "anger", "anticipation", "disgust", "fear", "joy", "love", "optimism", "pessimism",
    "sadness", "surprise", "trust",
)  # fmt: skip
EMOTION_LABELS = GOEMOTIONS_LABELS + tuple(x for x in EC_LABELS if x not in GOEMOTIONS_LABELS)
TWEETEVAL_EMOTIONS = ("anger", "joy", "optimism", "sadness")
INTENSITY_EMOTIONS = ("anger", "fear", "joy", "sadness")

_USER = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+")
_NON_WORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class MultiLabelText:
    """A text with the set of labels it carries (empty: none of the source's labels)."""

    text: str
    labels: frozenset[str]


@dataclass(frozen=True)
class ScoredText:
    """A text with one emotion's intensity score."""

    text: str
    emotion: str
    score: float


@dataclass(frozen=True)
class BinaryText:
    """A text with a yes/no label and where it came from."""

    text: str
    label: int
    source: str


def overlap_key(text: str) -> str:
    """Lower-case letters and digits only, users, links and '#' dropped."""
    text = _URL.sub(" ", _USER.sub(" ", text.replace("\\n", " ").lower()))
    return _NON_WORD.sub(" ", text).strip()


def _need(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"missing data file {path}")
    return path


def read_goemotions(data_dir: Path, split: str) -> list[MultiLabelText]:
    """GoEmotions 'original' (27 emotions + neutral): text, comma-separated label ids, id."""
    path = _need(data_dir / "goemotions" / "data" / "original" / f"{split}.tsv")
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for fields in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(fields) < 2:
                continue
            ids = [int(x) for x in fields[1].split(",") if x.strip()]
            rows.append(MultiLabelText(fields[0], frozenset(GOEMOTIONS_LABELS[i] for i in ids)))
    return rows


def read_semeval_ec(data_dir: Path, split: str) -> list[MultiLabelText]:
    """SemEval-2018 Task 1 E-c (11 emotions, multi-label; all zero means none of them)."""
    folder = data_dir / "semeval2018_task1_affect" / "datasets" / "task1" / "E-c"
    path = _need(folder / f"E-c-En-{split}.txt")
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        names = header[2:]
        for fields in reader:
            flags = fields[2:]
            labels = frozenset(n for n, f in zip(names, flags, strict=True) if f.strip() == "1")
            rows.append(MultiLabelText(fields[1], labels))
    return rows


def read_tweeteval_single(data_dir: Path, task: str, split: str) -> list[MultiLabelText]:
    """A TweetEval classification split as one-label rows (label names from mapping.txt)."""
    folder = data_dir / "tweeteval" / "datasets" / task
    mapping = dict(
        line.split("\t", 1)
        for line in _need(folder / "mapping.txt").read_text().splitlines()
        if line.strip()
    )
    texts = _need(folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = _need(folder / f"{split}_labels.txt").read_text().split()
    if len(texts) != len(labels):
        raise InputError(f"tweeteval {task}/{split}: {len(texts)} texts, {len(labels)} labels")
    return [
        MultiLabelText(t.strip(), frozenset({mapping[x].strip()}))
        for t, x in zip(texts, labels, strict=True)
    ]


def read_ei_reg(data_dir: Path, emotion: str, split: str) -> list[ScoredText]:
    """SemEval-2018 Task 1 EI-reg: tweets with an intensity in [0, 1] for one emotion."""
    folder = data_dir / "semeval2018_task1_affect" / "datasets" / "task1" / "EI-reg"
    path = _need(folder / f"EI-reg-En-{emotion}-{split}.txt")
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for fields in reader:
            rows.append(ScoredText(fields[1].replace("\\n", "\n"), emotion, float(fields[3])))
    return rows


def read_semeval_irony(data_dir: Path) -> list[BinaryText]:
    """SemEval-2018 Task 3 subtask A train (ironic 0/1), with the irony hashtags removed."""
    folder = data_dir / "semeval2018_task3_irony" / "datasets" / "train"
    path = _need(folder / "SemEval2018-T3-train-taskA.txt")
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for fields in reader:
            if len(fields) >= 3:
                rows.append(BinaryText(fields[2], int(fields[1]), "semeval2018_t3"))
    return rows


def read_isarcasmeval(data_dir: Path) -> tuple[list[BinaryText], list[BinaryText]]:
    """iSarcasmEval train: (tweets labelled sarcastic 0/1, the authors' plain rephrases = 0)."""
    path = _need(data_dir / "isarcasmeval" / "train" / "train.En.csv")
    tweets, rephrases = [], []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            text = (row.get("tweet") or "").strip()
            if not text or row.get("sarcastic") not in {"0", "1"}:
                continue
            tweets.append(BinaryText(text, int(row["sarcastic"]), "isarcasmeval"))
            rephrase = (row.get("rephrase") or "").strip()
            if rephrase:
                rephrases.append(BinaryText(rephrase, 0, "isarcasmeval_rephrase"))
    return tweets, rephrases
