"""Fixtures: a tiny random BERT (and GPT-2) with a real WordPiece vocab, and small data files, all in tmp dirs.
No hub access is needed anywhere in the suite."""

import json
import os
import random
import socket
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # scripts/test.sh runs one worker per core: a worker (and the runs it starts) using every core's threads on
    # tiny tensors would spend its time waiting for the other worker's threads (measured: the suite 20% slower).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

WORDS = (
    "good great fine nice happy love best fun bad awful poor sad hate worst boring dull movie film plot actor "
    "the a is was it this that and not very really story music cat dog red blue green one two three"
).split()
POSITIVE, NEGATIVE = WORDS[:8], WORDS[8:16]
FILLER = WORDS[16:]


def make_bert(path, num_labels: int = 2):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    os.makedirs(path, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(os.path.join(path, "vocab.txt"), do_lower_case=True)
    tokenizer.model_max_length = 64
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    return save_tiny(BertForSequenceClassification, config, tokenizer, path)


def save_tiny(model_class, config, tokenizer, path) -> str:
    """A randomly initialised model, the same weights every time, saved with its tokenizer."""
    import torch

    torch.manual_seed(0)
    model_class(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    return make_bert(tmp_path_factory.mktemp("tiny-bert"))


def sentence(rng, positive: bool, n: int = 6) -> str:
    words = [rng.choice(POSITIVE if positive else NEGATIVE) for _ in range(2)] + rng.sample(FILLER, rng.randint(1, n))
    rng.shuffle(words)
    return " ".join(words)


def write_rows(path, rows):
    """Write rows as csv/tsv/json/jsonl/parquet according to the extension."""
    import pandas as pd

    ext = os.path.splitext(str(path))[1]
    if ext == ".jsonl":
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    elif ext == ".json":
        with open(path, "w") as f:
            json.dump(rows, f)
    elif ext == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    elif ext == ".tsv":
        pd.DataFrame(rows).to_csv(path, index=False, sep="\t")
    elif ext == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    return str(path)


def sentiment_rows(n, seed=0, label_fn=lambda pos: int(pos)):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos = rng.random() < 0.5
        rows.append({"id": i, "sentence": sentence(rng, pos), "label": label_fn(pos)})
    return rows


@pytest.fixture
def sentiment_files(tmp_path):
    """train/dev/test csv with int labels; the test file has labels too, so predictions carry gold."""
    return {
        "train": write_rows(tmp_path / "train.csv", sentiment_rows(64, 0)),
        "dev": write_rows(tmp_path / "dev.csv", sentiment_rows(21, 1)),
        "test": write_rows(tmp_path / "test.csv", sentiment_rows(13, 2)),
    }


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def two_cpu_processes(script: str = "run_classification.py") -> list[str]:
    """The documented 2-process CPU launch (recipes/accelerate/cpu_multi_process.yaml) of `script` (relative to the
    repository root), on a port free now: the suite runs tests in parallel, and two launches on accelerate's default
    port 29500 at once fail with EADDRINUSE (seen in the suite)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = os.path.join(ROOT, "recipes", "accelerate", "cpu_multi_process.yaml")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config]
    return [*launch, "--main_process_port", str(port), os.path.join(ROOT, script)]


TRAIN_FLAGS = [
    "--per_device_train_batch_size",
    "8",
    "--per_device_eval_batch_size",
    "8",
    "--num_train_epochs",
    "1",
    "--learning_rate",
    "1e-3",
    "--save_strategy",
    "no",
    "--logging_steps",
    "2",
    "--use_cpu",
    "--seed",
    "0",
    "--disable_tqdm",
    "true",
    "--plots",  # a second a run: the pictures are tested in test_eval_report.py
    "false",
]


def write_sst2(folder, n_train=40, n_dev=12):
    """An SST-2 folder in the original layout (train/dev/test.tsv) of tiny-vocabulary sentences, for the benchmarks."""
    rng = random.Random(0)
    folder.mkdir()
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        rows = []
        for i in range(n):
            positive = i % 2 == 0
            rows.append(f"{sentence(rng, positive, n=rng.randint(1, 12))}\t{int(positive)}\n")
        (folder / name).write_text("sentence\tlabel\n" + "".join(rows), encoding="utf-8")
    (folder / "test.tsv").write_text("index\tsentence\n0\tgood movie\n1\tbad film\n", encoding="utf-8")
    return str(folder)
