#!/usr/bin/env python
"""Build data/sst2-multilabel/{train,dev,test}.jsonl: multi-label documents of real SST-2 sentences, for the
--multi_label_threshold tune example (README "Imbalanced classes, early stopping, long texts").

    python scripts/make_multilabel_sst2.py data/sst2-sample data/sst2-multilabel

Each document is 1 to 3 consecutive sentences of the shipped SST-2 sample (scripts/make_sst2_sample.py), lengths
drawn with random.Random(0); its labels are the polarities its sentences have ("positive", "negative", or both),
as SST-2's annotators gave them. train: documents from the sample's first 6,000 training sentences; dev (where the
thresholds are tuned): from the SST-2 dev set; test (where they are measured): from the last 2,000 training
sentences, which train never saw.
"""

import argparse
import csv
import json
import os
import random
import sys


def documents(rows, rng):
    out, i = [], 0
    while i < len(rows):
        n = rng.randint(1, 3)
        part = rows[i : i + n]
        out.append({"text": " ".join(r["sentence"] for r in part), "labels": sorted({r["label"] for r in part})})
        i += n
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="the shipped SST-2 sample's folder (data/sst2-sample: train.csv, dev.csv)")
    p.add_argument("target", help="the folder to write train/dev/test.jsonl to (data/sst2-multilabel)")
    a = p.parse_args(argv)
    source, target = a.source, a.target
    read = lambda name: list(csv.DictReader(open(os.path.join(source, name), encoding="utf-8", newline="")))  # noqa: E731
    train, dev = read("train.csv"), read("dev.csv")
    rng = random.Random(0)
    splits = {"train": documents(train[:6000], rng), "dev": documents(dev, rng), "test": documents(train[6000:], rng)}
    os.makedirs(target, exist_ok=True)
    for name, docs in splits.items():
        path = os.path.join(target, f"{name}.jsonl")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(d) + "\n" for d in docs)
        os.replace(path + ".tmp", path)
        both = sum(len(d["labels"]) == 2 for d in docs)
        print(f"wrote {len(docs)} documents to {path} ({both} with both labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
