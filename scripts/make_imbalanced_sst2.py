#!/usr/bin/env python
"""Build data/sst2-imbalanced/train.csv: real SST-2 training sentences with a 20:1 class ratio, for the
--class_weights example (README "Imbalanced classes"; recipes/imbalance/).

    python scripts/make_imbalanced_sst2.py data/sst2-sample/train.csv data/sst2-imbalanced/train.csv

From the shipped SST-2 sample (scripts/make_sst2_sample.py), in its order: the first 2,000 negative rows and the first
100 positive ones, interleaved as they come. Evaluation uses the untouched SST-2 dev set (data/sst2-sample/dev.csv:
428 negative, 444 positive), so the minority class's recall is measured on as many rows as the majority's.
"""

import argparse
import csv
import os
import sys

KEEP = {"negative": 2000, "positive": 100}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="the shipped SST-2 sample's train.csv (data/sst2-sample/train.csv)")
    p.add_argument("target", help="the CSV to write (data/sst2-imbalanced/train.csv)")
    a = p.parse_args(argv)
    source, target = a.source, a.target
    with open(source, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    taken, kept = {k: 0 for k in KEEP}, []
    for row in rows:
        if taken.get(row["label"], 10**9) < KEEP[row["label"]]:
            taken[row["label"]] += 1
            kept.append(row)
    if taken != KEEP:
        print(f"error: {source} has too few rows for {KEEP} (found {taken})", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    with open(target + ".tmp", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["sentence", "label"])
        writer.writeheader()
        writer.writerows({"sentence": r["sentence"], "label": r["label"]} for r in kept)
    os.replace(target + ".tmp", target)
    print(f"wrote {len(kept)} rows ({taken}) to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
