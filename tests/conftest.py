"""Fixtures: tiny random models (BERT, GPT-2, Llama, DistilBERT, a pooler-less BERT) with real vocabularies, and small
data files, built in tmp dirs by tests/helpers.py. No hub access is needed anywhere in the suite."""

import atexit
import os
import shutil
import signal
import tempfile
import warnings

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "HF_DATASETS_CACHE" not in os.environ:
    # Every run caches its tokenized files in datasets' cache: the suite's runs go to a folder of this process's own,
    # removed at its exit, not to the user's ~/.cache (one machine's had grown to 351 MB in 6,587 folders of the
    # suite's tiny files). Set here, before anything imports datasets, which reads it once; runs started as
    # subprocesses inherit it.
    _DATASETS_CACHE = tempfile.mkdtemp(prefix="textcls-tests-datasets-")
    os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE
    atexit.register(shutil.rmtree, _DATASETS_CACHE, ignore_errors=True)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # scripts/test.sh runs one worker per core: a worker (and the runs it starts) using every core's threads on
    # tiny tensors would spend its time waiting for the other worker's threads (measured: the suite 20% slower).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# after the environment above: helpers import transformers
from tests.helpers import (  # noqa: E402
    make_bert,
    make_bert_backbone,
    make_distilbert,
    make_gpt2,
    make_llama,
    sentiment_rows,
    write_rows,
)

# What a fresh Python process has: Ctrl-C raises KeyboardInterrupt, SIGTERM ends it.
FRESH_HANDLERS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


@pytest.fixture(autouse=True)
def fresh_signal_handlers():
    """Every test starts and ends with a fresh process's SIGINT and SIGTERM handlers. A run in this process installs
    its own while it trains (GracefulStop) or tokenizes with workers (tokenization.interruptible_workers); one left
    behind swallows a later test's Ctrl-C (a fresh clone's suite once failed that way, far from the leak). A test that
    leaves one fails. One found at the start was left by a fixture (set up before this fixture, so not caught above):
    it is reset, and a warning in the summary names it (its qualified name says whose) without failing a test that
    did nothing wrong."""
    found = _reset_signal_handlers()
    stale = {signal.Signals(s).name: _name(h) for s, h in found.items() if h is not FRESH_HANDLERS[s]}
    if stale:
        warnings.warn(f"signal handlers left by a fixture or an earlier test, reset: {stale}", stacklevel=1)
    yield
    left = _reset_signal_handlers()
    leaked = {signal.Signals(s).name: _name(h) for s, h in left.items() if h is not FRESH_HANDLERS[s]}
    assert not leaked, f"this test left signal handlers installed: {leaked}"


def _reset_signal_handlers() -> dict:
    """A fresh process's handlers installed; returns the ones they replaced."""
    return {s: signal.signal(s, handler) for s, handler in FRESH_HANDLERS.items()}


def _name(handler) -> str:
    return getattr(handler, "__qualname__", None) and f"{handler.__module__}.{handler.__qualname__}" or repr(handler)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    return make_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def sentiment_files(tmp_path):
    """train/dev/test csv with int labels; the test file has labels too, so predictions carry gold."""
    return {
        "train": write_rows(tmp_path / "train.csv", sentiment_rows(64, 0)),
        "dev": write_rows(tmp_path / "dev.csv", sentiment_rows(21, 1)),
        "test": write_rows(tmp_path / "test.csv", sentiment_rows(13, 2)),
    }


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    return make_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    return make_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory):
    return make_distilbert(tmp_path_factory.mktemp("tiny-distilbert"))


@pytest.fixture(scope="session")
def tiny_bert_backbone(tmp_path_factory):
    return make_bert_backbone(tmp_path_factory.mktemp("tiny-bert-backbone"))
