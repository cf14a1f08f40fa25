#!/usr/bin/env python
"""Large review-like CSVs for the scale benchmark (benchmarks/scale.py), built from real SST-2 sentences.

    python scripts/make_scale_data.py ../shared/data/glue/SST-2 data/scale --rows 100000 1000000 4000000

Each row joins 8 SST-2 sentences drawn at random (with replacement, random.Random(seed)) from one split: about 100
WordPiece tokens a row. Its label is the majority polarity of the 8 (ties: the first sentence's), written as the
class name (negative/positive). It writes train-<N>.csv for each N (training sentences), and dev.csv (2,000 rows)
and test.csv (100,000 rows) from the dev sentences, so that no evaluated row repeats a training sentence. Nothing
here is committed (data/scale/ is ignored): 4M rows are about 1.7 GB.
"""

import argparse
import csv
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from textcls.data.glue import GLUE_TASKS  # noqa: E402  (the repository root is put on the path just above)

NAMES = GLUE_TASKS["sst2"].label_names
SENTENCES_PER_ROW = 8


def read_sentences(path: str) -> list[tuple[str, int]]:
    with open(path, encoding="utf-8", newline="") as f:
        return [
            (r["sentence"].strip(), int(r["label"])) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        ]


def write_rows(path: str, sentences: list[tuple[str, int]], rows: int, seed: int) -> None:
    rng = random.Random(seed)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence", "label"])
        for _ in range(rows):
            picked = rng.choices(sentences, k=SENTENCES_PER_ROW)
            positive = sum(label for _, label in picked)
            label = picked[0][1] if 2 * positive == SENTENCES_PER_ROW else int(2 * positive > SENTENCES_PER_ROW)
            writer.writerow([" ".join(text for text, _ in picked), NAMES[label]])
    os.replace(tmp, path)  # a killed run leaves no half file under the final name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sst2_dir", help="the original GLUE SST-2 folder (train.tsv, dev.tsv)")
    p.add_argument("out_dir")
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 4_000_000])
    p.add_argument("--dev_rows", type=int, default=2000)
    p.add_argument("--test_rows", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    train = read_sentences(os.path.join(args.sst2_dir, "train.tsv"))
    dev = read_sentences(os.path.join(args.sst2_dir, "dev.tsv"))
    for rows in args.rows:
        path = os.path.join(args.out_dir, f"train-{rows}.csv")
        if not os.path.exists(path):
            write_rows(path, train, rows, args.seed)
        print(path, os.path.getsize(path))
    for name, rows, seed in (("dev.csv", args.dev_rows, args.seed + 1), ("test.csv", args.test_rows, args.seed + 2)):
        path = os.path.join(args.out_dir, name)
        if not os.path.exists(path):
            write_rows(path, dev, rows, seed)
        print(path, os.path.getsize(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
