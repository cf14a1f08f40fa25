"""Tokenizing: each split's texts (and text pairs) into token ids, lengths and encoded labels, batch by batch into
compact Arrow columns.

Why this shape (measured on 2 cores, all-MiniLM-L6-v2, rows of ~100 WordPiece tokens; benchmarks/scale.py):
- Whole-split Python lists of ids, masks and lengths cost ~36 bytes a token: a 1M-row CSV ran a 24 GiB machine out
  of memory. Here `datasets.map` tokenizes 1,000 rows at a time and writes uint16 ids (int32 for vocabularies of
  65,536 and more), int8 segment ids (where the tokenizer makes them) and an int32 length per row: 2-3 bytes a
  token, memory-mapped from disk for a split read from files, so memory does not grow with rows.
- No attention mask is stored: for unpadded rows it is all ones, and the collator builds each batch's from the
  lengths (textcls/data/collate.py). --pad_to_max_length rows keep theirs (int8), for the stock collator.
- A split read from files (--train_file ...) is tokenized once: the result is cached beside datasets' own Arrow copy
  of the file, under a fingerprint of the file's copy, the tokenizer, max_seq_length, the columns and the label map,
  so a second run on the same inputs reads it back and any change to one of them tokenizes again. Splits held in
  memory (an original GLUE folder, the hub's small tasks) are tokenized in memory, as before.
- Labels are checked for the whole split from Arrow's distinct values before any tokenizing (textcls/data/labels.py),
  then encoded batch by batch.
- Token ids already in the data (an `input_ids` column, as an engine that tokenized it wrote it) are checked from
  Arrow and passed through the same map, not tokenized again.
- A streamed split (--streaming) goes through the same row encoder inside datasets' IterableDataset.map, as
  training reads it (tokenize_stream).
"""

import contextlib
import glob
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.stats
from datasets.fingerprint import Hasher
from transformers.tokenization_utils_base import PaddingStrategy, TruncationStrategy

from textcls.data.labels import LabelEncoder
from textcls.data.load import TOKEN_IDS, Columns, Stream, arrow_column
from textcls.errors import UserError

logger = logging.getLogger(__name__)

# Bump when what tokenize_split writes changes: cached splits of the old layout are then tokenized again.
LAYOUT_VERSION = 2
BATCH_ROWS = 1000  # rows per tokenizer call and per Arrow record batch written
# --long_document_strategy chunk: the column of each window's text (its row in the split), for evaluation to put the
# windows' logits back together (ClassificationTrainer.evaluation_loop).
DOCUMENT = "document"
PROGRESS_SECONDS = 10.0  # a log line this often while a split is tokenized (and progress bars are off)


@dataclass(frozen=True)
class Encoding:
    """How a split's rows become model inputs: the window, padding, and how a longer text is cut."""

    max_length: int  # tokens a row (or a window) holds
    pad_to_max_length: bool = False  # pad every row to max_length as it is tokenized (the HF examples' way)
    head_tail: bool = False  # keep a long text's first quarter and its end (--long_document_strategy head_tail)
    stride: int | None = None  # split a long text into windows sharing this many tokens (chunk)
    documents: bool = False  # number each window by its text (a DOCUMENT column), for evaluated splits


def tokenize_splits(
    splits, columns: Columns, tokenizer, labels, data_args, long_docs, training_args=None, per_batch: bool = False
) -> dict:
    """{(role, split): (tokenized rows, order)}: training rows as they are (order None); evaluation and test rows
    sorted by length (big evaluation batches then pad little), with the order that undoes it. A streamed training
    split (--streaming) becomes a stream of tokenized rows (tokenize_stream). per_batch (resolve_tokenize): the
    training split stays text, with its labels encoded and its lengths estimated (per_batch_rows); training
    tokenizes each batch as it reads it (per_batch_encoder, textcls.data.collate.TokenizingRows).

    Under a distributed launch (training_args.main_process_first), splits read from files are tokenized by each
    node's main process while the others wait, and read back from its cache by them (as run_glue.py does), instead
    of every process tokenizing the same rows into the same cache files."""
    on_disk = any(ds.cache_files for names in splits.values() for ds in names.values())
    if training_args is not None and on_disk:
        with training_args.main_process_first(local=True, desc="tokenizing"):
            return _tokenize_splits(splits, columns, tokenizer, labels, data_args, long_docs, training_args, per_batch)
    return _tokenize_splits(splits, columns, tokenizer, labels, data_args, long_docs, training_args, per_batch)


def _tokenize_splits(
    splits, columns: Columns, tokenizer, labels, data_args, long_docs, training_args, per_batch
) -> dict:
    head_tail = long_docs.strategy == "head_tail"  # (config.checks.resolve_long_documents decided and checked it)
    stride = long_docs.stride if long_docs.strategy == "chunk" else None
    if columns.token_ids and data_args.pad_to_max_length:
        raise UserError(
            f"--pad_to_max_length pads text as it is tokenized, but this data holds token ids ('{TOKEN_IDS}'). Drop "
            "the flag: batches are padded as they are built."
        )
    encoders = {}  # every split's labels are checked before any split is tokenized
    for role, names in splits.items():
        for name, ds in names.items():
            encoder = None
            if columns.label is not None and columns.label in ds.features:
                stream = isinstance(ds, Stream)
                encoder = LabelEncoder(labels, name, require_labels=role != "test", every_batch=stream)
                if not encoder.check(ds.head if stream else ds, columns.label) and role == "test":
                    encoder = None  # unlabelled test rows (GLUE's -1): predict only, no loss
            encoders[(role, name)] = encoder
    tokenized = {}
    for role, names in splits.items():
        for name, ds in names.items():
            encoder = encoders[(role, name)]
            if isinstance(ds, Stream):
                rows = tokenize_stream(ds, tokenizer, columns, encoder, data_args, long_docs, training_args)
                tokenized[(role, name)] = (rows, None)
                continue
            if role == "train" and per_batch:
                rows = per_batch_rows(ds, columns, tokenizer, long_docs, encoder, name)
                tokenized[(role, name)] = (rows, None)
                continue
            documents = stride is not None and role != "train"
            encoding = Encoding(long_docs.max_length, data_args.pad_to_max_length, head_tail, stride, documents)
            tok = tokenize_split(
                ds,
                tokenizer,
                columns,
                None,
                encoding,
                name,
                encoder=encoder,
                num_proc=data_args.preprocessing_num_workers,
            )
            if role == "train":
                tokenized[(role, name)] = (tok, None)
            elif stride is None:
                tokenized[(role, name)] = sort_by_length(tok)
            else:  # evaluation puts each text's windows back together, in the split's order (no order to undo)
                tokenized[(role, name)] = (sort_by_length(tok)[0], None)
    return tokenized


def check_texts(ds: datasets.Dataset, column: str, split: str) -> None:
    """Empty texts (None, '', whitespace) are kept (the model sees only special tokens) and counted in a warning,
    read from Arrow a chunk at a time. A split whose texts are all empty is an error: the column is most likely the
    wrong one."""
    empty = 0
    for chunk in arrow_column(ds, column).chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            chunk = pc.cast(chunk, pa.string())
        stripped = pc.utf8_trim_whitespace(pc.fill_null(chunk, ""))
        empty += pc.sum(pc.equal(pc.utf8_length(stripped), 0)).as_py() or 0
    if len(ds) and empty == len(ds):
        raise UserError(
            f"all {empty} rows of the {split} split have an empty '{column}'. Check that it is the text column "
            "(--text_column NAME, --text_pair_column NAME), or fill the texts."
        )
    if empty:
        logger.warning(
            "%d of %d rows in the %s split have an empty '%s'; they are kept as empty input.",
            empty,
            len(ds),
            split,
            column,
        )


def clean_texts(values, column: str, split: str) -> list[str]:
    """A list of texts as the tokenizer takes them (None becomes ''), with check_texts' warning and error."""
    texts = ["" if v is None else str(v) for v in values]
    check_texts(datasets.Dataset.from_dict({column: texts}), column, split)
    return texts


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides the token ids: the fast tokenizer's whole definition (vocabulary, normalizer, special tokens,
    post-processor), its truncation side, and its class."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = backend.to_str() if backend is not None else Hasher.hash(tokenizer)
    return Hasher.hash((type(tokenizer).__name__, state, tokenizer.truncation_side, tokenizer.model_input_names))


def output_features(
    tokenizer, pad_to_max_length: bool, problem_type: str | None, segments: bool = True, documents: bool = False
) -> datasets.Features:
    """segments: False for token ids given without segment ids (the model then takes every token as segment 0).
    documents: each row is a window of the split's row DOCUMENT (--long_document_strategy chunk, evaluated splits)."""
    ids = "uint16" if len(tokenizer) <= 2**16 else "int32"
    features = {"input_ids": datasets.List(datasets.Value(ids))}
    if segments and "token_type_ids" in tokenizer.model_input_names:
        features["token_type_ids"] = datasets.List(datasets.Value("int8"))
    if pad_to_max_length:
        features["attention_mask"] = datasets.List(datasets.Value("int8"))
    features["length"] = datasets.Value("int32")
    if problem_type == "regression":
        features["labels"] = datasets.Value("float32")
    elif problem_type == "multi_label_classification":
        features["labels"] = datasets.List(datasets.Value("float32"))
    elif problem_type is not None:
        features["labels"] = datasets.Value("int64")
    if documents:
        features[DOCUMENT] = datasets.Value("int64")
    return datasets.Features(features)


class _Progress:
    """A log line every PROGRESS_SECONDS: rows done, rows per second, time left (one process of a num_proc map
    counts its own shard)."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.done = what, total, 0
        self.start = self.last = time.monotonic()

    def update(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.last < PROGRESS_SECONDS or self.done >= self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-6)
        logger.info(
            "%s: %d of %d rows (%.0f%%), %.0f rows/s, about %.0f s left",
            self.what,
            self.done,
            self.total,
            100 * self.done / self.total,
            rate,
            (self.total - self.done) / rate,
        )


def batch_encoder(tokenizer, max_seq_length: int, pad_to_max_length: bool, stride: int | None = None):
    """texts, pairs -> {input_ids, token_type_ids (if the tokenizer makes them), attention_mask (padded only)}: what
    tokenizer(texts, pairs, truncation=True, max_length=max_seq_length) gives. For a fast tokenizer without padding
    it calls the Rust tokenizer's encode_batch_fast, which skips the character offsets that transformers has it
    compute and then drops (measured: TOKENIZE_SPEEDUP), after setting the same truncation transformers sets.

    stride (--long_document_strategy chunk): every window of each text instead, as tokenizer(...,
    return_overflowing_tokens=True, stride=stride) gives them (of a pair, the second text's windows, each with the
    whole first text), plus 'window_of': the input row of each window."""

    backend = getattr(tokenizer, "_tokenizer", None)
    if (
        pad_to_max_length
        or not hasattr(backend, "encode_batch_fast")
        or not hasattr(tokenizer, "set_truncation_and_padding")
    ):

        def encode(texts, pairs):
            windows = {} if stride is None else {"stride": stride, "return_overflowing_tokens": True}
            enc = tokenizer(
                texts,
                pairs,
                truncation="only_second" if windows and pairs is not None else True,
                max_length=max_seq_length,
                padding="max_length" if pad_to_max_length else False,
                return_attention_mask=pad_to_max_length,
                **windows,
            )
            if windows:
                enc["window_of"] = enc.pop("overflow_to_sample_mapping")
            return enc

        return encode
    types = "token_type_ids" in tokenizer.model_input_names

    def encode_fast(texts, pairs):
        split_second = stride is not None and pairs is not None
        tokenizer.set_truncation_and_padding(
            padding_strategy=PaddingStrategy.DO_NOT_PAD,
            truncation_strategy=TruncationStrategy.ONLY_SECOND if split_second else TruncationStrategy.LONGEST_FIRST,
            max_length=max_seq_length,
            stride=stride or 0,
            pad_to_multiple_of=None,
            padding_side=None,
        )
        if backend.encode_special_tokens != tokenizer.split_special_tokens:
            backend.encode_special_tokens = tokenizer.split_special_tokens
        encodings = backend.encode_batch_fast(list(zip(texts, pairs, strict=True)) if pairs is not None else texts)
        out = {}
        if stride is not None:  # each text's first window, then the windows truncation cut off, in order
            out["window_of"] = [i for i, e in enumerate(encodings) for _ in range(1 + len(e.overflowing))]
            encodings = [w for e in encodings for w in (e, *e.overflowing)]
        out["input_ids"] = [e.ids for e in encodings]
        if types:
            out["token_type_ids"] = [e.type_ids for e in encodings]
        return out

    return encode_fast


def check_pair_windows(tokenizer, texts, pairs, max_seq_length: int, stride: int, split: str) -> None:
    """--long_document_strategy chunk on pairs: every window repeats the whole first text, so the first text must
    leave room for more than doc_stride tokens of the second (the Rust tokenizer panics, uncatchably, if not)."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    room = max_seq_length - specials - stride
    encode = tokenizer._tokenizer.encode_batch_fast
    lengths = [len(e.ids) for e in encode(texts, add_special_tokens=False)]
    for i in (i for i, n in enumerate(lengths) if n >= room):
        text, n = texts[i], lengths[i]
        if n + len(encode([pairs[i]], add_special_tokens=False)[0].ids) + specials > max_seq_length:  # to be split
            raise UserError(
                f"--long_document_strategy chunk repeats a pair's first text in every window of the second, but a "
                f"first text of the {split} split has {n} tokens, leaving no room in a window of --max_seq_length "
                f"{max_seq_length} for more than --doc_stride {stride} of the second: {text[:80]!r}. Raise "
                "--max_seq_length, lower --doc_stride, or put the long text first in --text_column's place."
            )


# head_tail tokenizes a text whole (up to this many tokens) before cutting out its middle.
HEAD_TAIL_LIMIT = 1_000_000


def keep_head_and_tail(encoded: dict, max_seq_length: int) -> dict:
    """Rows longer than max_seq_length keep their first max_seq_length // 4 tokens and their last ones (so the
    opening and closing special tokens stay); shorter rows are unchanged."""
    head = max_seq_length // 4
    tail = max_seq_length - head
    return {
        key: [row if len(row) <= max_seq_length else row[:head] + row[len(row) - tail :] for row in rows]
        for key, rows in encoded.items()
    }


def row_encoder(
    tokenizer, columns, features, encoding: Encoding, label_source, encoder, check_ids=False, split="train"
):
    """A batch of raw rows (datasets' column dict) -> its output columns: token ids (and segment ids, and the mask
    when padded), each row's length, and its targets (encoded by `encoder`, or taken as they are). Token ids given
    in the data (columns.token_ids) are passed on as they are; check_ids: check each batch of them as
    check_token_ids checks a whole split (a stream's rows past its head).

    stride (--long_document_strategy chunk): a row becomes its windows, each with the row's targets and, where the
    features ask for a 'document' column, the row's index in the split (`indices`, from datasets' with_indices), by
    which evaluation puts the windows' logits back together."""
    max_seq_length, pad_to_max_length = encoding.max_length, encoding.pad_to_max_length
    head_tail, stride = encoding.head_tail, encoding.stride
    if columns.token_ids:
        return _token_id_encoder(tokenizer, features, max_seq_length, label_source, encoder, check_ids)
    encode = batch_encoder(tokenizer, HEAD_TAIL_LIMIT if head_tail else max_seq_length, pad_to_max_length, stride)

    def tokenize(batch, indices=None):
        texts = ["" if v is None else str(v) for v in batch[columns.text]]
        pairs = ["" if v is None else str(v) for v in batch[columns.text_pair]] if columns.text_pair else None
        if stride is not None and pairs is not None:
            check_pair_windows(tokenizer, texts, pairs, max_seq_length, stride, split)
        enc = encode(texts, pairs)
        if head_tail:
            enc = keep_head_and_tail(dict(enc), max_seq_length)
        out = {key: enc[key] for key in features if key in enc}
        if pad_to_max_length:
            out["length"] = [sum(mask) for mask in enc["attention_mask"]]
        else:
            out["length"] = [len(ids) for ids in enc["input_ids"]]
        rows = enc["window_of"] if stride is not None else None
        if label_source is not None:
            values = batch[label_source]
            targets = values if encoder is None else encoder(values)
            out["labels"] = targets if rows is None else [targets[i] for i in rows]
        if DOCUMENT in features:
            out[DOCUMENT] = [indices[i] for i in rows]
        return out

    return tokenize


def _token_id_encoder(tokenizer, features, max_seq_length, label_source, encoder, check_ids):
    vocabulary = len(tokenizer)

    def passthrough(batch, indices=None):
        ids = batch[TOKEN_IDS]
        if check_ids:
            for row in ids:
                if len(row) > max_seq_length or (row and (min(row) < 0 or max(row) >= vocabulary)):
                    # the whole-split check's error, for this batch
                    check_token_ids(datasets.Dataset.from_dict({TOKEN_IDS: ids}), "train", tokenizer, max_seq_length)
        out = {TOKEN_IDS: ids, "length": [len(row) for row in ids]}
        if "token_type_ids" in features:
            out["token_type_ids"] = batch["token_type_ids"]
        if label_source is not None:
            values = batch[label_source]
            out["labels"] = values if encoder is None else encoder(values)
        return out

    return passthrough


def check_inputs(ds: datasets.Dataset, columns: Columns, split: str, tokenizer, max_seq_length: int) -> None:
    """What the model's input is made from: the texts (check_texts), or token ids given in the data
    (check_token_ids)."""
    if columns.token_ids:
        check_token_ids(ds, split, tokenizer, max_seq_length)
        return
    check_texts(ds, columns.text, split)
    if columns.text_pair:
        check_texts(ds, columns.text_pair, split)


def check_token_ids(ds: datasets.Dataset, split: str, tokenizer, max_seq_length: int) -> None:
    """Token ids written by whoever tokenized the data (an engine, an earlier pipeline), read from Arrow: every id
    in the model's vocabulary, no row longer than --max_seq_length (they are not truncated: that would cut off the
    closing special token), and rows without any token counted in a warning (all of them: an error)."""
    values = arrow_column(ds, TOKEN_IDS)
    lengths = pc.fill_null(pc.list_value_length(values), 0)
    longest = pc.max(lengths).as_py() or 0
    if longest > max_seq_length:
        raise UserError(
            f"the {split} split has rows of up to {longest} token ids, more than --max_seq_length {max_seq_length}. "
            f"Truncate them where they were tokenized, or pass --max_seq_length {longest} (up to the model's maximum)."
        )
    bounds = pc.min_max(pc.list_flatten(values))
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    vocabulary = len(tokenizer)
    if low is not None and (low < 0 or high >= vocabulary):
        bad = high if high >= vocabulary else low
        raise UserError(
            f"the {split} split has token id {bad}, outside this tokenizer's vocabulary (0 to {vocabulary - 1}): the "
            "ids were made by another tokenizer. Tokenize with the model's own, or give the text instead."
        )
    empty = pc.sum(pc.equal(lengths, 0)).as_py() or 0
    if len(ds) and empty == len(ds):
        raise UserError(f"all {empty} rows of the {split} split have no token ids in '{TOKEN_IDS}'.")
    if empty:
        logger.warning("%d of %d rows in the %s split have no token ids; they are kept.", empty, len(ds), split)


@contextlib.contextmanager
def interruptible_workers(ds, workers: int | None):
    """Ctrl-C while datasets' worker processes tokenize (--preprocessing_num_workers N) stops the run as it does with
    one process: one KeyboardInterrupt, nothing half-written left in the cache. The terminal sends SIGINT to every
    process of the group: each worker printed its own traceback, datasets' pool then replaced the parent's
    KeyboardInterrupt with a TimeoutError (exit 1), and a worker's temporary cache file stayed for good. So the
    workers (forked with this handler) ignore it and are ended by the pool, the parent raises KeyboardInterrupt
    whatever datasets turned it into, and the temporary files written since the map began are removed."""
    if not workers or workers < 2 or threading.current_thread() is not threading.main_thread():
        yield
        return
    parent, started = os.getpid(), time.time()

    def handler(signum, frame):
        if os.getpid() == parent:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    except BaseException as e:
        chain = [e]
        while chain[-1].__context__ is not None and len(chain) < 10:
            chain.append(chain[-1].__context__)
        if not any(isinstance(x, KeyboardInterrupt) for x in chain):
            raise
        for folder in {os.path.dirname(f["filename"]) for f in ds.cache_files}:
            for path in glob.glob(os.path.join(folder, "tmp*")):
                if os.path.getmtime(path) >= started - 1:
                    os.unlink(path)
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGINT, previous)


def tokenize_split(
    ds: datasets.Dataset,
    tokenizer,
    columns: Columns,
    labels: list | None,
    encoding: Encoding,
    split: str,
    encoder: LabelEncoder | None = None,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Tokenize one split into input_ids (token_type_ids for pairs, attention_mask when padded to max length),
    'length' and 'labels'. A pair is encoded as a pair (segment ids, truncation of the longer text), never
    concatenated. Labels are the rows' targets given as a list, or encoded from the label column by `encoder`.
    encoding.stride: each row becomes its windows (--long_document_strategy chunk), numbered by row in a DOCUMENT
    column when encoding.documents (evaluated splits)."""
    max_seq_length, pad_to_max_length = encoding.max_length, encoding.pad_to_max_length
    head_tail, stride, documents = encoding.head_tail, encoding.stride, encoding.documents
    check_inputs(ds, columns, split, tokenizer, max_seq_length)
    problem_type, label_source = None, None
    if labels is not None:  # a small split whose targets are already known (tests, tools)
        ds = ds.add_column("_targets", labels)
        kind = next((v for v in labels if v is not None), 0)
        problem_type = {list: "multi_label_classification", float: "regression"}.get(
            type(kind), "single_label_classification"
        )
        label_source = "_targets"
    elif encoder is not None:
        problem_type, label_source = encoder.labels.problem_type, columns.label
    features = output_features(tokenizer, pad_to_max_length, problem_type, segments(ds, columns), documents)
    workers = num_proc if num_proc and num_proc > 1 and len(ds) >= num_proc * BATCH_ROWS else None
    # Each of num_proc workers tokenizes a contiguous shard of the split and reports on its own.
    what = f"tokenizing the {split} split" + (f" (each of {workers} workers its share)" if workers else "")
    progress = _Progress(what, len(ds) // (workers or 1))
    encode = row_encoder(tokenizer, columns, features, encoding, label_source, encoder, split=split)

    def tokenize(batch, indices=None):
        progress.update(len(batch[columns.text]))
        return encode(batch, indices)

    fingerprint = Hasher.hash(
        (
            LAYOUT_VERSION,
            ds._fingerprint,
            tokenizer_fingerprint(tokenizer),
            max_seq_length,
            pad_to_max_length,
            columns,
            None if encoder is None else (encoder.labels, encoder.split),
        )
        + (("head_tail",) if head_tail else ())  # (the fingerprint of a truncating run is as it was)
        + (("chunk", stride, documents) if stride is not None else ())
    )
    cached = bool(ds.cache_files) and _cache_exists(ds, fingerprint)
    start = time.monotonic()
    with interruptible_workers(ds, workers):
        out = ds.map(
            tokenize,
            batched=True,
            with_indices=documents,
            batch_size=BATCH_ROWS,
            writer_batch_size=BATCH_ROWS,
            remove_columns=ds.column_names,
            features=features,
            new_fingerprint=fingerprint,
            num_proc=workers,
            desc=f"Tokenizing {split}",
        )
    if stride is not None:
        logger.info(
            "%s: %d texts -> %d windows (--max_seq_length %d, --doc_stride %d)",
            split,
            len(ds),
            len(out),
            max_seq_length,
            stride,
        )
    if cached:
        logger.info("%s: %d rows tokenized by an earlier run: %s", split, len(out), out.cache_files[0]["filename"])
    elif len(out) >= 100 * BATCH_ROWS:
        logger.info("%s: %d rows tokenized in %.1f s", split, len(out), time.monotonic() - start)
    return out


def _cache_exists(ds: datasets.Dataset, fingerprint: str) -> bool:
    path = ds._get_cache_file_path(fingerprint)
    stem, ext = os.path.splitext(path)
    return os.path.exists(path) or bool(glob.glob(f"{stem}_*_of_*{ext}"))  # written by num_proc workers


# A stream's rows are shuffled within a buffer of this many (datasets' default is 1,000: with rows of a file written
# in order, e.g. sorted by label or date, a wider window mixes more; it holds raw text, a few MB).
SHUFFLE_ROWS = 10_000
# Length grouping within each run of this many batches, as transformers' LengthGroupedSampler groups within
# "megabatches" of 50 batches.
GROUP_BATCHES = 50


def segments(ds, columns: Columns) -> bool:
    """Whether the rows get segment ids: always when tokenized here (if the tokenizer makes them); for token ids
    given in the data, when it has them too."""
    return not columns.token_ids or "token_type_ids" in ds.features


def tokenize_stream(stream: Stream, tokenizer, columns: Columns, encoder, data_args, long_docs, training_args):
    """A streamed training split -> a stream of tokenized rows (datasets.IterableDataset.map: tokenized as training
    reads them, batch by batch, nothing cached), in the order --train_sampling_strategy asks for:
    - 'random': shuffled within a buffer of SHUFFLE_ROWS rows (and the order of the stream's shards), reshuffled
      each pass from (--seed, pass);
    - 'group_by_length' (the default): that, then within each run of GROUP_BATCHES batches the rows sorted by length,
      cut into batches, and the batches put in a random order (group_by_length_within);
    - 'sequential': the file's order.
    Labels are checked batch by batch as they are encoded: a row with an unknown or (where required) missing label
    stops the run with the error a whole split would have raised up front."""
    head = f"{stream.source} (its first {len(stream.head)} rows)"
    check_inputs(stream.head, columns, head, tokenizer, long_docs.max_length)
    problem_type = encoder.labels.problem_type if encoder is not None else None
    features = output_features(tokenizer, data_args.pad_to_max_length, problem_type, segments(stream, columns))
    label_source = columns.label if encoder is not None else None
    encoding = Encoding(
        long_docs.max_length,
        data_args.pad_to_max_length,
        head_tail=long_docs.strategy == "head_tail",
        stride=long_docs.stride if long_docs.strategy == "chunk" else None,
    )
    encode = row_encoder(tokenizer, columns, features, encoding, label_source, encoder, True, stream.source)
    strategy = training_args.train_sampling_strategy
    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    rows = stream.rows
    if strategy != "sequential":
        rows = rows.shuffle(seed=seed, buffer_size=SHUFFLE_ROWS)
    rows = rows.map(encode, batched=True, batch_size=BATCH_ROWS, remove_columns=stream.column_names, features=features)
    if strategy == "group_by_length":
        batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
        rows = rows.map(
            group_by_length_within,
            batched=True,
            batch_size=batch * GROUP_BATCHES,
            fn_kwargs={"batch_size": batch, "seed": seed},
            features=features,
        )
    return rows


def group_by_length_within(rows: dict, batch_size: int, seed: int) -> dict:
    """One run of rows (a column dict), reordered: sorted by length (longest first, stable), cut into batches of
    batch_size, the batches shuffled (the last, possibly short, one stays last). The shuffle is seeded from --seed
    and the run's lengths, so the same stream in the same order gives the same batches (a resumed run skips exactly
    the batches it trained on)."""
    lengths = np.asarray(rows["length"])
    order = np.argsort(-lengths, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    full = batches if len(order) % batch_size == 0 else batches[:-1]
    rng = np.random.default_rng([seed, int(lengths.sum()), len(lengths)])
    shuffled = [full[i] for i in rng.permutation(len(full))] + batches[len(full) :]
    take = np.concatenate(shuffled) if shuffled else order
    return {key: [values[i] for i in take] for key, values in rows.items()}


def sort_by_length(ds):
    """Sort a tokenized split by length (stable), returning (sorted split, order) with sorted[i] = ds[order[i]]."""
    order = np.argsort(arrow_column(ds, "length").to_numpy(), kind="stable")
    return ds.select(order), order


def unsort(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    out[order] = values
    return out


def join_windows(predictions: np.ndarray, label_ids, documents: np.ndarray, how: str = "mean"):
    """Undo --long_document_strategy chunk for evaluation: each text's windows' logits (rows of `predictions`, in any
    order, window i from text documents[i]) -> one row per text, in the split's order: their mean, or their
    elementwise max. A text's gold labels are any of its windows' (they all carry the text's). Run on the gathered
    predictions of every process, so a text whose windows were split between processes is joined once, whole."""
    documents = np.asarray(documents, dtype=np.int64)
    texts = int(documents.max()) + 1 if len(documents) else 0
    counts = np.bincount(documents, minlength=texts)
    if (counts == 0).any():
        raise ValueError(f"text {int(np.flatnonzero(counts == 0)[0])} has no window among the predictions")
    values = np.asarray(predictions, dtype=np.float64)
    flat = values.reshape(len(documents), -1)
    if how == "mean":
        joined = np.zeros((texts, flat.shape[1]))
        np.add.at(joined, documents, flat)
        joined /= counts[:, None]
    elif how == "max":
        joined = np.full((texts, flat.shape[1]), -np.inf)
        np.maximum.at(joined, documents, flat)
    else:
        raise ValueError(f"unknown aggregation {how!r}")
    joined = joined.reshape((texts, *values.shape[1:])).astype(np.asarray(predictions).dtype)
    gold = None
    if label_ids is not None:
        label_ids = np.asarray(label_ids)
        gold = np.empty((texts, *label_ids.shape[1:]), dtype=label_ids.dtype)
        gold[documents] = label_ids
    return joined, gold


# ------------------------------------------------------------------------------ per-batch tokenizing (--tokenize)

PER_BATCH_FROM_ROWS = 100_000  # --tokenize auto: a training split this long is tokenized as training reads it
LENGTH_SAMPLE = 2_000  # rows tokenized up front to measure the data's tokens per byte


def resolve_tokenize(data_args, training_args, columns: Columns, long_docs, train, decided=None) -> bool:
    """--tokenize, decided once: True when the training split is to be tokenized batch by batch as training reads it.

    Why per batch: on a split read from a new file, tokenizing it whole is most of the wait before the first
    training step, and the fast tokenizer takes a batch of 32 such rows in 6.6 ms, against 5.4 s for a CPU training
    step of the same batch (all-MiniLM-L6-v2, 2 cores). Measured (benchmarks/scale.py, results/speed/
    scale-cpu-2026-12-06.json), a new 1M-row file of ~90-token rows reached its first training step in 24 s, against
    195 s tokenized up front and 330 s for the real run_glue.py with its best flags, training at the same speed
    afterwards (5.95 against 5.92 samples/s). At 100k rows: 18 s against 35 s. So 'auto' takes it on CPU from
    PER_BATCH_FROM_ROWS rows (below, tokenizing whole takes seconds and gives exact lengths for length grouping).
    Not on a GPU by default: there a small model's step takes a few milliseconds, and tokenizing in the training
    process would hold it up unless --dataloader_num_workers does it beside it (not measured: no GPU here).

    decided: what auto resolved to in the run a resumed checkpoint belongs to (run_folder.decided): taken again, so
    a run resumed on another device keeps its batch order (up front, length groups use the true lengths)."""
    if train is None or isinstance(train, Stream) or data_args.tokenize == "upfront":
        return False
    cannot = None
    if columns.token_ids:
        cannot = f"the data holds token ids ('{TOKEN_IDS}') already"
    elif data_args.pad_to_max_length:
        cannot = "--pad_to_max_length pads each row as it is tokenized"
    elif long_docs.strategy == "chunk":
        cannot = "--long_document_strategy chunk makes each text as many rows as it has windows"
    if data_args.tokenize == "per_batch":
        if cannot:
            raise UserError(f"--tokenize per_batch cannot work here: {cannot}. Drop the flag (or pass upfront).")
        logger.info("--tokenize per_batch: the training texts are tokenized batch by batch as training reads them")
        return True
    if not cannot and (decided or {}).get("tokenize") in ("per_batch", "upfront"):
        how = {"per_batch": "per batch", "upfront": "up front"}[decided["tokenize"]]
        logger.info("--tokenize auto: %s, as the checkpoint it resumes was trained", how)
        return decided["tokenize"] == "per_batch"
    if cannot or len(train) < PER_BATCH_FROM_ROWS:
        return False
    if training_args is None or _device_type(training_args) != "cpu":
        return False
    logger.info(
        "--tokenize auto: %d training rows on CPU, tokenized batch by batch as training reads them rather than all "
        "before it starts (--tokenize upfront to tokenize and cache them first)",
        len(train),
    )
    return True


def _device_type(training_args) -> str:
    return training_args.device.type


def per_batch_encoder(tokenizer, columns: Columns, long_docs):
    """Arrow rows of the text columns (and encoded 'labels') -> the table up-front tokenizing would have stored for
    them, less 'length' (input_ids, token_type_ids where the tokenizer makes them; the labels carried over): the
    same row encoder, so a batch's model inputs are the same either way."""
    encoding = Encoding(long_docs.max_length, False, long_docs.strategy == "head_tail")
    features = output_features(tokenizer, False, None)
    encode = row_encoder(tokenizer, columns, features, encoding, None, None)
    schema = pa.schema([f for f in features.arrow_schema if f.name != "length"])  # (what the model is given)
    texts = [columns.text] + ([columns.text_pair] if columns.text_pair else [])

    def tokenize(rows: pa.Table) -> pa.Table:
        out = encode({name: rows.column(name).to_pylist() for name in texts})
        table = pa.Table.from_pydict({name: out[name] for name in schema.names}, schema=schema)
        return table.append_column("labels", rows.column("labels")) if "labels" in rows.column_names else table

    return tokenize


def text_lengths(ds: datasets.Dataset, columns: Columns) -> np.ndarray:
    """Each row's UTF-8 bytes (of its text and its pair), from Arrow's offsets alone: no text is read."""
    total = np.zeros(len(ds), dtype=np.int64)
    for name in [columns.text] + ([columns.text_pair] if columns.text_pair else []):
        column = arrow_column(ds, name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = pc.cast(column, pa.string())
        total += pc.fill_null(pc.binary_length(column), 0).to_numpy().astype(np.int64)
    return total


def estimate_lengths(ds: datasets.Dataset, columns: Columns, tokenizer, long_docs, split: str) -> np.ndarray:
    """Each row's token count as tokenizing would give it, estimated from its bytes at the tokens per byte of
    LENGTH_SAMPLE evenly spaced rows tokenized here (capped at max_seq_length): which row the length-grouped sampler
    puts first (it sorts each megabatch by true lengths: train.resume.lazily_grouped).
    (Bytes, not characters: Arrow has them without reading the texts; the ratio measured on the data itself absorbs
    the bytes per character of its script.) Logged with the rank correlation of estimate and truth on those rows."""
    size = text_lengths(ds, columns)
    sample = np.unique(np.linspace(0, len(ds) - 1, min(LENGTH_SAMPLE, len(ds))).astype(np.int64))
    rows = ds.select(sample).select_columns([c for c in (columns.text, columns.text_pair) if c])
    tokens = per_batch_encoder(tokenizer, columns, long_docs)(rows.with_format("arrow")[:]).column("input_ids")
    exact = tokens.combine_chunks().value_lengths().to_numpy().astype(np.int64)
    special = tokenizer.num_special_tokens_to_add(pair=columns.text_pair is not None)
    whole = exact < long_docs.max_length  # rows the window cut say nothing about their tokens per byte
    body, seen = (exact - special)[whole], size[sample][whole]
    per_byte = body.sum() / max(seen.sum(), 1) if whole.any() else 1.0
    estimate = np.minimum(special + np.ceil(size * per_byte), long_docs.max_length).astype(np.int32)
    agreement = scipy.stats.spearmanr(exact, estimate[sample]).statistic if len(sample) > 2 else float("nan")
    logger.info(
        "%s split: lengths estimated from bytes, %.3f tokens a byte measured on %d rows (rank correlation with their "
        "true lengths %.2f); length-grouped batches are sorted by true lengths, measured as training reaches them",
        split,
        per_byte,
        len(sample),
        agreement,
    )
    return estimate


def per_batch_rows(ds: datasets.Dataset, columns: Columns, tokenizer, long_docs, encoder, split: str):
    """The training split as per-batch tokenizing reads it: its text column(s), 'labels' encoded (and checked) here,
    and 'length' estimated (estimate_lengths). The texts are checked as up-front tokenizing checks them."""
    check_inputs(ds, columns, split, tokenizer, long_docs.max_length)
    rows = ds.select_columns([c for c in (columns.text, columns.text_pair) if c])
    if encoder is not None:
        features = output_features(tokenizer, False, encoder.labels.problem_type)
        values = arrow_column(ds, columns.label)
        targets = [
            t for start in range(0, len(ds), 100_000) for t in encoder(values.slice(start, 100_000).to_pylist())
        ]
        rows = rows.add_column("labels", targets, feature=features["labels"])
    lengths = estimate_lengths(ds, columns, tokenizer, long_docs, split)
    return rows.add_column("length", lengths, feature=datasets.Value("int32"))
