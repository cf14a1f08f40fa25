"""Rebuild data/sst2-sample from the original GLUE SST-2 files (provenance of the shipped sample).

python scripts/make_sst2_sample.py ../shared/data/glue/SST-2 data/sst2-sample

Labels are written as the task's class names (negative, positive), so the model's config, predictions.jsonl and
pipeline() output say what each class means; sorted, they keep the original ids (negative = 0, positive = 1).
"""

import argparse
import csv
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from textcls.data.glue import GLUE_TASKS  # noqa: E402  (the repository root is put on the path just above)

TRAIN_ROWS = 8000
NAMES = GLUE_TASKS["sst2"].label_names


def read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def write(path, rows):
    with open(path + ".tmp", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["sentence", "label"])
        w.writeheader()
        w.writerows({"sentence": r["sentence"].strip(), "label": NAMES[int(r["label"])]} for r in rows)
    os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", help="GLUE's SST-2 folder (train.tsv, dev.tsv), e.g. ../shared/data/glue/SST-2")
    p.add_argument("dst", help="the folder to write train.csv and dev.csv to (data/sst2-sample)")
    a = p.parse_args(argv)
    train = read(f"{a.src}/train.tsv")
    os.makedirs(a.dst, exist_ok=True)
    write(f"{a.dst}/train.csv", random.Random(0).sample(train, TRAIN_ROWS))
    write(f"{a.dst}/dev.csv", read(f"{a.src}/dev.tsv"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
