"""What the tests share that is not a fixture: the tiny models and data files they build, the flags of a short
training run and the one helper that runs it, the documented 2-process launch, the GLUE test tables. Fixtures that
build them once per session are in conftest.py. Test files import from here, never from each other."""

import json
import os
import random
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
from datasets import ClassLabel, Features, Value
from safetensors.torch import load_file

import run_classification as R
from textcls.train.resume import GracefulStop

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


def _word_tokenizer(specials: list[str], bos: str, eos: str, unk: str, add_bos: bool):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*specials, *WORDS])}
    tok = Tokenizer(WordLevel(vocab, unk_token=unk))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if add_bos:
        # Llama-style: every sequence starts with BOS (a pair: BOS a BOS b).
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=unk, model_max_length=64
    )


def make_gpt2(path, num_labels: int = 2):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    os.makedirs(path, exist_ok=True)
    tokenizer = _word_tokenizer(["<|endoftext|>", "<unk>"], "<|endoftext|>", "<|endoftext|>", "<unk>", False)
    assert tokenizer.pad_token is None
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        num_labels=num_labels,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=None,
    )
    return save_tiny(GPT2ForSequenceClassification, config, tokenizer, path)


def make_llama(path, num_labels: int = 2):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    os.makedirs(path, exist_ok=True)
    tokenizer = _word_tokenizer(["<unk>", "<s>", "</s>"], "<s>", "</s>", "<unk>", True)
    assert tokenizer.pad_token is None
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        num_labels=num_labels,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=None,
    )
    return save_tiny(LlamaForSequenceClassification, config, tokenizer, path)


def make_distilbert(path, num_labels: int = 2):
    from transformers import BertTokenizerFast, DistilBertConfig, DistilBertForSequenceClassification

    os.makedirs(path, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(os.path.join(path, "vocab.txt"), do_lower_case=True, model_max_length=64)
    config = DistilBertConfig(
        vocab_size=len(vocab), dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=64
    )
    config.num_labels = num_labels
    return save_tiny(DistilBertForSequenceClassification, config, tokenizer, path)


def make_bert_backbone(path):
    """A BERT saved as a bare BertModel without pooler, as sentence-embedding checkpoints often are: a classifier
    built from it gets a new head AND a new pooler, both random until trained."""
    from transformers import BertConfig, BertModel

    make_bert(path)
    config = BertConfig.from_pretrained(path)
    backbone = BertModel(config, add_pooling_layer=False)
    backbone.save_pretrained(path)
    return str(path)


def _classes(*names):
    return ClassLabel(names=list(names))


def _hub_features(text_columns, label):
    """Features of hub nyu-mll/glue, written out here so the tests do not trust the module's own table."""
    return Features({**{column: Value("string") for column in text_columns}, "label": label, "idx": Value("int32")})


_NLI_2 = _classes("entailment", "not_entailment")


HUB_FEATURES = {
    "cola": _hub_features(["sentence"], _classes("unacceptable", "acceptable")),
    "sst2": _hub_features(["sentence"], _classes("negative", "positive")),
    "mrpc": _hub_features(["sentence1", "sentence2"], _classes("not_equivalent", "equivalent")),
    "stsb": _hub_features(["sentence1", "sentence2"], Value("float32")),
    "qqp": _hub_features(["question1", "question2"], _classes("not_duplicate", "duplicate")),
    "mnli": _hub_features(["premise", "hypothesis"], _classes("entailment", "neutral", "contradiction")),
    "qnli": _hub_features(["question", "sentence"], _NLI_2),
    "rte": _hub_features(["sentence1", "sentence2"], _NLI_2),
    "wnli": _hub_features(["sentence1", "sentence2"], _classes("not_entailment", "entailment")),
}


def write_tsv(folder: Path, name: str, rows, bom=False):
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join("\t".join(row) + "\n" for row in rows)
    (folder / name).write_text(("\ufeff" if bom else "") + text, encoding="utf-8")


GLUE_DIR = Path(os.environ.get("GLUE_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "glue"))


def signal_at_step(monkeypatch, step, signum=signal.SIGTERM):
    """Training raises the signal in-process at the end of this optimizer step (before GracefulStop looks)."""
    original = GracefulStop.on_step_end

    def raise_it(self, args, state, control, **kwargs):
        if state.global_step == step:
            signal.raise_signal(signum)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(GracefulStop, "on_step_end", raise_it)
    return lambda: monkeypatch.setattr(GracefulStop, "on_step_end", original)


SIGNAL_AT_STEP = """
import os, runpy, sys
from textcls.train.resume import GracefulStop
step, signum = int(sys.argv.pop(1)), int(sys.argv.pop(1))
original = GracefulStop.on_step_end
def at_step(self, args, state, control, **kwargs):
    if state.global_step == step:
        os.kill(os.getpid(), signum)
    return original(self, args, state, control, **kwargs)
GracefulStop.on_step_end = at_step
runpy.run_path("run_classification.py", run_name="__main__")
"""


def start_with_signal_at_step(argv, logs, step, signum):
    """`python run_classification.py *argv` in a process of its own that sends itself `signum` at the end of
    optimizer step `step`, as kill(1) would from outside, but at a known step: polling a tiny model's run for its
    checkpoint raced the run on shared cores (and starved at nice 19: two minutes of the suite). Output to files."""
    with open(logs / "stdout", "w") as stdout, open(logs / "stderr", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", SIGNAL_AT_STEP, str(step), str(int(signum)), *argv],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
        )


def three_class_rows(n, seed):
    rows = sentiment_rows(n, seed)
    for row in rows:
        row["label"] = "neutral" if row["id"] % 4 == 0 else ("pos" if row["label"] else "neg")
    return rows


def _run_here(script: str, argv: list[str]) -> tuple[int, float]:
    """A benchmark's run of `script` (our run_classification.py or benchmarks/hf_reference.py) as a call in this
    process: its exit code and wall seconds."""
    from benchmarks import hf_reference

    entry = {"run_classification.py": R.cli, "hf_reference.py": hf_reference.main}[os.path.basename(script)]
    started = time.monotonic()
    code = entry(argv)
    return code, time.monotonic() - started


def run_ours_in_process(monkeypatch, *benchmarks):
    """The benchmarks run each training as a subprocess (benchmarks/_runs.run_logged, speed.run_process and
    scale.run_process: test_benchmarks.py tests each directly: the subprocess, its log, its own peak RSS and a failed
    run). In the benchmarks' end-to-end tests those runs of our script (and of hf_reference.py) are calls in this
    process instead: the same code, arguments and exit code, without a new interpreter's ~3.5 s of imports a run
    (torch, transformers, datasets, sklearn, peft; 2 cores). The peak RSS such a run reports is this process's. Any
    other script (the stand-in peer, the setfit library) still runs as a subprocess. `benchmarks`: the modules whose
    runs move (label_noise, learning_curve and sampler_order's run_logged; speed's and scale's run_process)."""
    from benchmarks import _runs

    def ours(script: str) -> bool:
        return os.path.basename(script) in ("run_classification.py", "hf_reference.py")

    def run_logged(argv, log):
        if not ours(argv[0]):
            return _runs.run_logged(argv, log)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"\n$ {' '.join(argv)}\n")
        code, wall = _run_here(argv[0], argv[1:])
        if code != 0:
            raise SystemExit(f"run failed ({code}); see {log}")
        return wall

    def in_root(module, command) -> tuple[float, int]:  # speed's and scale's subprocesses run from the root
        here = os.getcwd()
        os.chdir(ROOT)
        try:
            code, wall = _run_here(command[1], command[2:])
        finally:
            os.chdir(here)
        if code != 0:
            raise module.RunFailed(f"{shlex.join(command)} exited with {code}")
        return wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    for module in benchmarks:
        if hasattr(module, "run_logged"):
            monkeypatch.setattr(module, "run_logged", run_logged)
        elif module.__name__.endswith("speed"):  # (command, log) -> wall, peak RSS

            def speed_run(command, log, module=module, real=module.run_process):
                return in_root(module, command) if ours(command[1]) else real(command, log)

            monkeypatch.setattr(module, "run_process", speed_run)
        else:  # scale's: (command, env, log) -> wall, seconds to the first step (not seen here), peak RSS

            def scale_run(command, env, log, module=module, real=module.run_process):
                if not ours(command[1]):
                    return real(command, env, log)
                wall, rss = in_root(module, command)
                return wall, None, rss

            monkeypatch.setattr(module, "run_process", scale_run)


def run_main(model, out, *flags):
    """A short training run of `model` into `out` (TRAIN_FLAGS; later flags override them): main()'s results."""
    return R.main(["--model_name_or_path", str(model), "--output_dir", str(out), *TRAIN_FLAGS, *flags])


TIMING = ("runtime", "per_second")


def short_run_argv(model, train, dev, out, *extra):
    return [
        "--model", model, "--train_file", train, "--validation_file", dev, "--do_train", "--do_eval",
        "--output_dir", str(out), "--use_cpu", "--seed", "0", "--per_device_train_batch_size", "4",
        "--learning_rate", "1e-3", "--save_strategy", "no", "--logging_steps", "2", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip


def history(out):
    logs = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [{k: v for k, v in entry.items() if not any(t in k for t in TIMING)} for entry in logs]


def same_weights(a, b) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def assert_stop_at_step_7_resumes_bit_identical(model, files, tmp_path, monkeypatch, *flags):
    """A short run (short_run_argv + flags) stopped by SIGINT at step 7 and run again with the same command ends
    with the weights and log history of the same run left alone. flags must save checkpoints (before step 7)."""
    whole, out = tmp_path / "whole", tmp_path / "out"
    R.main(short_run_argv(model, files["train"], files["dev"], whole, *flags))
    put_back = signal_at_step(monkeypatch, 7, signal.SIGINT)
    assert R.cli(short_run_argv(model, files["train"], files["dev"], out, *flags)) == 128 + signal.SIGINT
    put_back()
    R.main(short_run_argv(model, files["train"], files["dev"], out, *flags))
    assert same_weights(whole, out)
    assert history(out) == history(whole)
