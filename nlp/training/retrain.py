"""Re-train every shipped head on the encoder with a given adapter, in one command.

    python -m nlp.training.retrain --data-dir ../shared/data \
        --adapter /tmp/undertone-train/mt1/adapter.npz --heads-dir DIR [--install]

Runs, on the served int8 encoder with the adapter merged: ``nlp.training.sentiment``,
``nlp.training.emotions``, ``nlp.training.intensity``, ``nlp.training.irony`` and
``nlp.training.complaint``, each writing ``DIR/<head>`` (every head records the adapter's
sha256; the analyzer refuses a head on any other encoder), then checks the taxonomy
mapping's side of the shared pass (``nlp.training.embedding_check``: nearest-neighbour
BANKING77 accuracy on held-out training rows, base against adapted).

``--install`` copies the adapter into ``models/heads/encoder-adapter`` and the heads into
``models/heads`` (``undertone models setup`` then re-exports the encoder with it merged).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from nlp.training import complaint, embedding_check, emotions, intensity, irony, sentiment
from nlp.training.affect_common import _TMP, build_encoder

HEADS = ("sentiment", "emotions", "intensity", "irony", "complaint")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument("--adapter", type=Path, required=True)
    p.add_argument("--heads-dir", type=Path, default=_TMP / "heads")
    p.add_argument("--repo-heads", type=Path, default=Path("models/heads"))
    p.add_argument("--skip", default="", help="comma-separated heads not to re-train")
    p.add_argument("--install", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train the heads, check the embeddings, optionally install; returns the metrics."""
    args = parse_args(argv)
    started = time.time()
    common = ["--data-dir", str(args.data_dir), "--adapter", str(args.adapter)]
    skip = {x for x in args.skip.split(",") if x}
    metrics: dict[str, Any] = {}
    for name in HEADS:
        if name in skip:
            continue
        print(f"== {name} ({(time.time() - started) / 60:.1f} min)", flush=True)
        out = ["--out", str(args.heads_dir / name)]
        if name == "sentiment":
            sentiment.main(common + out)
            meta = json.loads((args.heads_dir / name / "meta.json").read_text())
            metrics[name] = meta["metrics"]
        elif name == "emotions":
            metrics[name] = emotions.main(common + out + ["--version", "emotions.v3"])
        elif name == "intensity":
            metrics[name] = intensity.main(common + out + ["--version", "intensity.v3"])
        elif name == "irony":
            metrics[name] = irony.main(common + out + ["--version", "irony.v2"])
        else:
            complaint.main(common + out + ["--version", "complaint.v2"])
            meta = json.loads((args.heads_dir / name / "meta.json").read_text())
            metrics[name] = meta["metrics"]
    print("== embedding check", flush=True)
    base = build_encoder(argparse.Namespace(encoder_dir=None, adapter=None, max_length=128))
    adapted = build_encoder(
        argparse.Namespace(encoder_dir=None, adapter=args.adapter, max_length=128)
    )
    check_out = args.heads_dir / "embedding_check.json"
    embedding_check.main(
        [
            "--data-dir", str(args.data_dir), "--base", str(base.model_dir),
            "--adapted", str(adapted.model_dir), "--out", str(check_out),
        ]
    )  # fmt: skip
    metrics["banking77_nearest_neighbour"] = json.loads(check_out.read_text())
    (args.heads_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2), flush=True)
    if args.install:
        install(args)
    print(f"done in {(time.time() - started) / 60:.1f} min", flush=True)
    return metrics


def install(args: argparse.Namespace) -> None:
    """Copy the adapter (and its record) and the re-trained heads into the repository."""
    target = args.repo_heads / "encoder-adapter"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.adapter, target / "adapter.npz")
    record = args.adapter.parent / "adapter.json"
    if record.is_file():
        info = json.loads(record.read_text())
        info["metrics"] = json.loads((args.heads_dir / "metrics.json").read_text())
        (target / "adapter.json").write_text(json.dumps(info, indent=2) + "\n")
    for name in HEADS:
        source = args.heads_dir / name
        if (source / "meta.json").is_file():
            for file in ("weights.npz", "meta.json"):
                shutil.copyfile(source / file, args.repo_heads / name / file)
    print(f"installed the adapter and heads into {args.repo_heads}", flush=True)


if __name__ == "__main__":
    main()
