"""Tiny random decoder LMs (GPT-2, Llama) and a tiny DistilBERT for the LoRA tests, built offline in tmp dirs.

The decoder tokenizers are word-level `tokenizers` models over conftest's word list wrapped in
PreTrainedTokenizerFast with BOS/EOS/UNK and, as on the hub, no pad token: the pipeline must supply one."""

import os

import pytest

from tests.conftest import WORDS, save_tiny


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


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    return make_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    return make_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory):
    return make_distilbert(tmp_path_factory.mktemp("tiny-distilbert"))


def make_bert_backbone(path):
    """A BERT saved as a bare BertModel without pooler, as sentence-embedding checkpoints often are: a classifier
    built from it gets a new head AND a new pooler, both random until trained."""
    from transformers import BertConfig, BertModel

    from tests.conftest import make_bert

    make_bert(path)
    config = BertConfig.from_pretrained(path)
    backbone = BertModel(config, add_pooling_layer=False)
    backbone.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_bert_backbone(tmp_path_factory):
    return make_bert_backbone(tmp_path_factory.mktemp("tiny-bert-backbone"))
