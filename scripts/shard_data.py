#!/usr/bin/env python
"""Split one data file into N parquet shards, for --streaming under a multi-process launch (each process then reads
its own shards) or for any reader that wants files of a bounded size.

    python scripts/shard_data.py data/scale/train-4000000.csv data/shards --num_shards 8
    accelerate launch ... run_classification.py --train_file 'data/shards/train-*.parquet' --streaming true ...

datasets does the work: it reads the file into its memory-mapped Arrow cache (in batches: memory does not grow with
rows) and writes each contiguous shard with Dataset.to_parquet. The shards are named <stem>-00000-of-00008.parquet
(sorted = the file's order) and written under temporary names first, so that an interrupted run leaves no shard that
looks whole. Data already written as parquet shards by Spark, Ray Data or datasets needs no step here: pass its glob.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from textcls.data.load import load_local_file  # noqa: E402  (the repository root is put on the path just above)
from textcls.errors import UserError  # noqa: E402


def shard(path: str, out_dir: str, num_shards: int) -> list[str]:
    if num_shards < 1:
        raise UserError(f"--num_shards {num_shards}: pass 1 or more.")
    ds = load_local_file(path)
    if num_shards > len(ds):
        raise UserError(f"--num_shards {num_shards} is more than the file's {len(ds)} rows: pass at most that.")
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    written = []
    for index in range(num_shards):
        name = os.path.join(out_dir, f"{stem}-{index:05d}-of-{num_shards:05d}.parquet")
        part = ds.shard(num_shards=num_shards, index=index, contiguous=True)
        part.to_parquet(name + ".tmp")
        os.replace(name + ".tmp", name)
        written.append(name)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a .csv, .tsv, .json, .jsonl or .parquet file")
    parser.add_argument("out_dir")
    parser.add_argument("--num_shards", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        files = shard(args.path, args.out_dir, args.num_shards)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stem = os.path.splitext(os.path.basename(args.path))[0]
    print(f"{len(files)} shards in {args.out_dir}: pass --train_file '{os.path.join(args.out_dir, stem)}-*.parquet'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
