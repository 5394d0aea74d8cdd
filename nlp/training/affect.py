"""Train every affect head (emotions, intensity, irony) on the current encoder, in one command.

    python -m nlp.training.affect --data-dir ../shared/data [--adapter PATH] [--heads-dir DIR]

Runs ``nlp.training.emotions``, ``nlp.training.intensity`` and ``nlp.training.irony`` with the
same options (each head lands in ``HEADS_DIR/<name>``; vectors are cached outside the
repository, so the three share one embedding of any text) and prints their metrics.
Give ``--adapter models/heads/encoder-adapter/adapter.npz`` when the encoder ships one: the
heads then record its sha256 and the analyzer refuses them on any other encoder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nlp.training import emotions, intensity, irony


def main(argv: list[str] | None = None) -> None:
    """Run the three training commands with the shared options."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heads-dir", type=Path, default=Path("models/heads"))
    parser.parse_known_args(args)
    metrics = {}
    for name, module in (("emotions", emotions), ("intensity", intensity), ("irony", irony)):
        print(f"== {name}", flush=True)
        metrics[name] = module.main(args)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
