"""Does the int8 encoder give the same vectors on another kind of CPU? This CPU vs an emulated one.

    python -m benchmarks.int8_cpus --data-dir ../shared/data [--texts 374] [--cpu Haswell]

The int8 model's integer products run on VNNI (VPDPBUSD) where the CPU has it and on AVX2's
VPMADDUBSW (16-bit pair sums that saturate) where it does not, so the vectors, and every head's
scores, can differ between machines. This encodes TweetEval emotion val with the served int8
encoder (``var/models``, the shipped adapter merged) natively and under ``qemu-x86_64 -cpu
<cpu>`` (Debian's ``qemu-user``; Haswell has AVX2 and no VNNI), then reports the cosine between
the two vectors of each text and the shipped emotions head's TweetEval emotion macro-F1 on each.
Emulation is slow (about 2.5 minutes for 374 tweets). Writes benchmarks/results/int8_cpus.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from nlp.heads import load_heads
from nlp.training.common import machine_description

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "int8_cpus.json"
FOUR = ("anger", "joy", "optimism", "sadness")


def _texts(data_dir: Path, n: int) -> tuple[list[str], list[str]]:
    from nlp.training.affect_data import read_tweeteval_single

    rows = read_tweeteval_single(data_dir, "emotion", "val")[:n]
    return [r.text for r in rows], [next(iter(r.labels)) for r in rows]


def encode(data_dir: Path, n: int, out: Path) -> None:
    """Write the served int8 encoder's text vectors of the first ``n`` texts to ``out``."""
    from models.registry import resolve
    from nlp.encoder import Encoder, EncoderOptions
    from service.config import Settings

    settings = Settings()
    onnx_dir = resolve(settings.models, settings.artifacts_dir).encoder_onnx_dir
    encoder = Encoder(onnx_dir, EncoderOptions(max_length=128, batch_size=64, threads=1))
    texts, _ = _texts(data_dir, n)
    np.save(out, np.stack([e.text_vector for e in encoder.encode(texts)]))


def _macro_f1(head: Any, vectors: np.ndarray, gold: list[str]) -> float:
    from sklearn.metrics import f1_score

    columns = [list(head.meta.labels).index(label) for label in FOUR]
    predicted = head.predict(vectors)[:, columns].argmax(axis=1)
    truth = [FOUR.index(label) for label in gold]
    return round(float(f1_score(truth, predicted, average="macro")), 4)


def main() -> None:
    """Encode natively and emulated, compare, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--texts", type=int, default=374)
    parser.add_argument("--cpu", default="Haswell", help="qemu CPU model without VNNI")
    parser.add_argument("--encode-to", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args()
    if args.encode_to:
        encode(args.data_dir, args.texts, args.encode_to)
        return
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise SystemExit("qemu-x86_64 not found: apt-get install qemu-user")
    _, gold = _texts(args.data_dir, args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        native, emulated = Path(tmp) / "native.npy", Path(tmp) / "emulated.npy"
        child = [sys.executable, "-m", "benchmarks.int8_cpus", "--data-dir", str(args.data_dir)]
        child += ["--texts", str(args.texts)]
        subprocess.run([*child, "--encode-to", str(native)], check=True, cwd=REPO)
        subprocess.run(
            [qemu, "-cpu", args.cpu, *child, "--encode-to", str(emulated)], check=True, cwd=REPO
        )
        a, b = np.load(native), np.load(emulated)
    unit_a = a / np.linalg.norm(a, axis=1, keepdims=True)
    unit_b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cosine = (unit_a * unit_b).sum(axis=1)
    emotions = load_heads(REPO / "models" / "heads", ["emotions"])["emotions"]
    report: dict[str, Any] = {
        "texts": len(gold),
        "set": "TweetEval emotion val (first texts)",
        "native": machine_description(),
        "emulated_cpu": f"qemu-x86_64 -cpu {args.cpu}",
        "cosine_native_vs_emulated": {
            "mean": round(float(cosine.mean()), 5),
            "min": round(float(cosine.min()), 5),
        },
        "max_abs_difference": round(float(np.abs(a - b).max()), 5),
        "emotions_head_tweeteval_emotion_macro_f1": {
            "native": _macro_f1(emotions, a, gold),
            "emulated": _macro_f1(emotions, b, gold),
        },
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
