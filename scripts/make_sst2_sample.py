"""Rebuild data/sst2-sample from the original GLUE SST-2 files (provenance of the shipped sample).

python scripts/make_sst2_sample.py ../shared/data/glue/SST-2 data/sst2-sample
"""

import csv
import random
import sys

TRAIN_ROWS = 8000


def read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["sentence", "label"])
        w.writeheader()
        w.writerows({"sentence": r["sentence"].strip(), "label": r["label"]} for r in rows)


def main(src, dst):
    train = read(f"{src}/train.tsv")
    write(f"{dst}/train.csv", random.Random(0).sample(train, TRAIN_ROWS))
    write(f"{dst}/dev.csv", read(f"{src}/dev.tsv"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
