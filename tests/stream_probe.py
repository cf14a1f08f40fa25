"""Run by tests/pipeline/test_streaming.py under `accelerate launch`: run_classification.py's main, recording the token
ids of every row this process trained on, to <output_dir>/rows_<process index>.json. (Batches must be padded, not laid
end to end: pass --padding_free false.)"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import run_classification as R  # noqa: E402
from textcls.train.trainer import ClassificationTrainer  # noqa: E402

seen = []
training_step = ClassificationTrainer.training_step


def record(self, model, inputs, *args, **kwargs):
    for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"], strict=True):
        seen.append(ids[mask.bool()].tolist())
    return training_step(self, model, inputs, *args, **kwargs)


ClassificationTrainer.training_step = record
argv = sys.argv[1:]
R.main(argv)
out = argv[argv.index("--output_dir") + 1]
with open(os.path.join(out, f"rows_{os.environ.get('RANK', '0')}.json"), "w") as f:
    json.dump(seen, f)
