"""Throughput of the running service on a bulk upload: batched analysis jobs against one at a time.

    python -m benchmarks.service_throughput --data-dir ../shared/data

Starts the real `undertone serve` (embedded default: SQLite, in-process work) once per
setting of ``UNDERTONE_QUEUE__ANALYZE_BATCH_SIZE`` (1 = every feedback item analysed in its
own encoder call, as before batching; the default 32), in one run, on the same texts
(TweetEval sentiment val, or generated tweet-like texts when the data is absent). Each run
posts the texts in batches of 500 to ``POST /v1/feedback`` and waits until every item has
its analysis stored and every job (the detection evaluation included) is done, reading the
service's own SQLite file. Reports items per second from the first POST, the ratio, and the
server's peak RSS (``VmHWM``). Results: a table on stdout and
benchmarks/results/service_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.analyze_throughput import REPO, child_env, ensure_encoder_onnx, load_texts
from nlp.training.common import machine_description

RESULTS = REPO / "benchmarks" / "results" / "service_throughput.json"
_CLI = "from service.cli import main; main()"
POST_BATCH = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def _counts(db: Path) -> tuple[int, int]:
    """(stored analyses, jobs not yet done or failed), read-only."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        analysed = conn.execute("SELECT count(*) FROM analyses").fetchone()[0]
        pending = conn.execute(
            "SELECT count(*) FROM jobs WHERE status NOT IN ('done', 'failed')"
        ).fetchone()[0]
    return int(analysed), int(pending)


def measure(texts: list[str], batch_size: int, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """One server with this analysis batch size, fed every text; its figures."""
    data = work / f"data-{batch_size}"
    port = _free_port()
    run_env = {
        **env,
        "UNDERTONE_DATA_DIR": str(data),
        "UNDERTONE_API__AUTH_ENABLED": "false",
        "UNDERTONE_QUEUE__ANALYZE_BATCH_SIZE": str(batch_size),
        "UNDERTONE_LOG_LEVEL": "WARNING",
    }
    log = (work / f"serve-{batch_size}.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", _CLI, "serve", "--port", str(port)],
        env=run_env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"the server exited; see {log.name}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not become ready in 300 s")
                time.sleep(0.5)
            started = time.perf_counter()
            for start in range(0, len(texts), POST_BATCH):
                items = [
                    {"external_id": f"bench-{i}", "text": text, "channel": "social"}
                    for i, text in enumerate(texts[start : start + POST_BATCH], start)
                ]
                response = client.post("/v1/feedback", json={"items": items})
                response.raise_for_status()
            posted = time.perf_counter() - started
            db = data / "undertone.db"
            analysed_at = None
            while True:
                analysed, pending = _counts(db)
                now = time.perf_counter() - started
                if analysed_at is None and analysed >= len(texts):
                    analysed_at = now
                if analysed_at is not None and pending == 0:
                    break
                if now > 3600:
                    raise SystemExit(f"not done after an hour: {analysed} analysed")
                time.sleep(0.2)
        return {
            "analyze_batch_size": batch_size,
            "items": len(texts),
            "post_seconds": round(posted, 2),
            "analysed_seconds": round(analysed_at, 2),
            "all_jobs_done_seconds": round(now, 2),
            "items_per_second_analysed": round(len(texts) / analysed_at, 2),
            "items_per_second_all_done": round(len(texts) / now, 2),
            "peak_rss_mib": _peak_rss_mib(server.pid),
        }
    finally:
        server.terminate()
        server.wait(60)
        log.close()


def main() -> None:
    """Measure both settings, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--batch-sizes", default="1,32", help="the first one is the baseline")
    parser.add_argument("--artifacts-dir", type=Path, default=REPO / "var" / "models")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    texts, source = load_texts(args.data_dir, args.texts)
    load_at_start = list(os.getloadavg())
    ensure_encoder_onnx(args.artifacts_dir)
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="undertone-bench-") as tmp:
        env = child_env(args.artifacts_dir)
        runs = [measure(texts, size, Path(tmp), env) for size in sizes]
    baseline = runs[0]
    report = {
        "texts": source,
        "machine": machine_description(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "runs": runs,
        "ratios_to_batch_size_1": {
            str(r["analyze_batch_size"]): round(
                r["items_per_second_all_done"] / baseline["items_per_second_all_done"], 2
            )
            for r in runs[1:]
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'batch':>6} {'analysed/s':>11} {'all done/s':>11} {'peak MiB':>9}")
    for r in runs:
        print(
            f"{r['analyze_batch_size']:>6} {r['items_per_second_analysed']:>11} "
            f"{r['items_per_second_all_done']:>11} {r['peak_rss_mib']:>9}"
        )
    print(
        f"ratios (all done) to batch size {baseline['analyze_batch_size']}:",
        report["ratios_to_batch_size_1"],
    )


if __name__ == "__main__":
    main()
