"""Run every benchmark in turn (`make benchmark`); each writes its JSON to benchmarks/results/.

The benchmarks compare Undertone with the baseline a user would otherwise pick, in one run, as
ratios. They read the public data sets from ``--data-dir`` (never copied into the repository)
and take from a few minutes (complaints, banking77) to about half an hour (ASR) each on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCHMARKS = (
    "analyze_throughput",  # issue 2: `undertone analyze` vs an HF RoBERTa pipeline
    "service_throughput",  # issue 2: the running service, batched analysis jobs vs one at a time
    "affect_quality",  # issue 3: every head's val/dev figure and ECE
    "affect_speed",  # issue 3: full affect analysis vs 3 HF pipelines and the bare encoder
    "asr_wer",  # issue 4: WER on LJ Speech, the stereo call, short 8 kHz utterances
    "asr_ceiling",  # issue 4: what re-ranking could still fix among asr_wer's wrong clips
    "asr_speed",  # issue 4: the recording job path vs bare faster-whisper
    "banking77",  # issue 5: 10-shot and full-split case-type mapping accuracy
    "taxonomy_overhead",  # issue 5: analysis time with and without the mapping
    "complaints",  # issue 6: complaint detection under domain shift
    "detection_alarms",  # issue 6: how often detections fire per group of texts
    "int8_cpus",  # int8 vectors here vs on an emulated CPU without VNNI (needs qemu-user)
)


def main() -> int:
    """Run the benchmarks named (default: all) and report which failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("names", nargs="*", help=f"some of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if not args.data_dir.is_dir():
        print(f"no data at {args.data_dir}: pass --data-dir (see ../shared/data/README.md)")
        return 2
    failed = []
    for name in args.names or BENCHMARKS:
        print(f"== benchmarks.{name}", flush=True)
        command = [sys.executable, "-m", f"benchmarks.{name}", "--data-dir", str(args.data_dir)]
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
