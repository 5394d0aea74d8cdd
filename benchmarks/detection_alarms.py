"""How often detections fire, per group of texts: the false alarms a case team would get.

    python -m benchmarks.detection_alarms --data-dir ../shared/data

Runs `undertone analyze` (every head, the default taxonomy, the detection stage) on:

- airline tweets (Twitter US Airline Sentiment) labelled negative, positive and neutral with
  annotator confidence >= 0.99, 700 of each (seeded sample): negative tweets should raise a
  detection, positive ones should not;
- GoEmotions dev comments labelled "gratitude" and nothing else (sincere thanks, mostly);
- short texts written for this check: sarcastic complaints (should fire), thanks for a problem
  put right (should not), and complaints that a "fixed" problem is not fixed (should fire).

For each group: the share raising a detection, explicit / unexpressed, negative sentiment, and
each unexpressed signal at confidence >= 0.5. Writes benchmarks/results/detection_alarms.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.analyze_throughput import _CLI
from nlp.training.common import machine_description

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "detection_alarms.json"

WRITTEN: dict[str, list[str]] = {
    "written_sarcasm": [
        "Great, another hour on hold. Just perfect.",
        "Thanks for losing my luggage, really appreciate it.",
        "Fantastic, the app crashed for the third time today.",
        "Love waiting 45 minutes for someone to pick up the phone.",
        "Oh wonderful, charged twice again. Great job.",
        "Brilliant customer service, nobody ever calls back.",
        "So glad my refund is taking six weeks. Amazing.",
        "Wow, cancelled my flight with no notice. Thanks a lot.",
        "Nice to know my order is lost again. Perfect.",
        "Awesome, the internet is down for the fourth day in a row.",
    ],
    "written_thanks_for_a_fix": [
        "The support agent fixed my problem quickly, thank you.",
        "Thanks for fixing my issue so fast!",
        "The agent resolved my billing problem in five minutes, great service.",
        "My refund arrived today, thanks for sorting it out.",
        "Sarah on the phone solved the outage issue, really grateful.",
        "Great service, the agent fixed it in five minutes. Just perfect.",
        "The staff at the front desk were lovely and helpful.",
        "Your team went above and beyond, really appreciate it.",
        "Delivery arrived a day early, brilliant.",
        "Thank you for replacing the broken charger so quickly.",
        "Thanks to Tom for sorting out my account access, much appreciated.",
        "Really happy with how fast you handled the delayed parcel, thanks.",
    ],
    # Written after the resolution rule, as a check it was not fitted to.
    "written_thanks_for_a_fix_check": [
        "Engineer came out this morning and the broadband is working again, thanks so much.",
        "Just wanted to say the replacement phone arrived and it's perfect, thank you.",
        "Called about the double charge and Priya refunded it on the spot. Brilliant.",
        "Lost my card abroad and you had a new one sent to the hotel in two days, thank you!",
        "The app login issue is solved after the update, appreciate the quick fix.",
        "My delayed bag was delivered to my door last night, thanks for taking care of it.",
        "Thanks for rebooking me so fast after the cancelled flight, you saved my trip.",
        "Had a problem with my order but customer service sorted it out within an hour. Great job.",
        "Grateful to the team for restoring my account after the hack.",
        "The leak was repaired the same day, really impressed.",
    ],
    "written_not_fixed_complaints": [
        "They said it was fixed but it still doesn't work.",
        "The refund finally arrived but it was the wrong amount, again.",
        "My replacement arrived broken as well, this is ridiculous.",
        "You claimed the issue was resolved and closed my ticket without fixing anything.",
        "Third engineer visit and the internet is still not working.",
        "Thanks for nothing, my bag never arrived.",
        "The package arrived damaged and nobody answers the phone.",
        "Sorted out? I am still being charged twice every month.",
        "Great, the 'fixed' app crashed again the moment I opened it.",
        "It took you six weeks to replace a broken charger, unacceptable.",
    ],
}


def groups(data_dir: Path, per_class: int, seed: int) -> dict[str, list[str]]:
    """The texts of every group, by group name."""
    from nlp.training.affect_data import read_goemotions

    out: dict[str, list[str]] = {}
    path = data_dir / "twitter_us_airline_sentiment" / "Tweets.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rng = random.Random(seed)
    for label in ("negative", "positive", "neutral"):
        chosen = [
            r["text"]
            for r in rows
            if r["airline_sentiment"] == label and float(r["airline_sentiment_confidence"]) >= 0.99
        ]
        rng.shuffle(chosen)
        out[f"airline_{label}"] = chosen[:per_class]
    out["goemotions_dev_gratitude_only"] = [
        r.text for r in read_goemotions(data_dir, "dev") if r.labels == {"gratitude"}
    ]
    return out | WRITTEN


def rates(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Shares of one group's analyses that raise a detection, per kind and per signal."""
    counts: Counter[str] = Counter()
    for result in results:
        complaint = result.get("complaint", {})
        counts["detected"] += bool(result.get("detections"))
        counts["explicit"] += bool(complaint.get("explicit"))
        counts["unexpressed"] += bool(complaint.get("unexpressed"))
        counts["negative_sentiment"] += result["sentiment"]["label"] == "negative"
        for signal in complaint.get("signals", []):
            if signal["name"] != "complaint_head" and signal["confidence"] >= 0.5:
                counts[f"signal_{signal['name']}"] += 1
    n = len(results)
    return {"n": n, **{k: round(v / n, 4) for k, v in sorted(counts.items())}}


def main(argv: list[str] | None = None) -> None:
    """Analyse every group with `undertone analyze` and write the rates."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--per-class", type=int, default=700)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    texts = groups(args.data_dir, args.per_class, args.seed)
    with tempfile.TemporaryDirectory(prefix="undertone-alarms-") as tmp:
        source, target = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        with source.open("w", encoding="utf-8") as handle:
            for name, group in texts.items():
                for i, text in enumerate(group):
                    handle.write(json.dumps({"id": f"{name}:{i}", "text": text}) + "\n")
        command = [sys.executable, "-c", _CLI, "analyze", "--input", str(source)]
        subprocess.run([*command, "--output", str(target)], cwd=REPO, check=True)
        by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in target.read_text(encoding="utf-8").splitlines():
            result = json.loads(line)
            by_group[result["id"].rsplit(":", 1)[0]].append(result)
    report = {name: rates(by_group[name]) for name in texts}
    for name, row in report.items():
        print(
            f"{name:34s} n={row['n']:4d}  detected {row['detected']:.3f}  "
            f"explicit {row.get('explicit', 0):.3f}  unexpressed {row.get('unexpressed', 0):.3f}"
        )
    report["machine"] = machine_description()
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
