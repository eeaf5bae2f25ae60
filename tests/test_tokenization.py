"""Tests for textvae.data.tokenization: the four tokenizer types on tiny made-up corpora."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
import torch

from textvae.config import ConfigError, TokenizerConfig
from textvae.data.tokenization import (
    BOS,
    EOS,
    PAD,
    UNK,
    HFTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    TokenizerError,
    WordTokenizer,
    load_tokenizer,
    train_tokenizer,
)

TYPES = ["word", "bpe", "wordpiece", "sentencepiece"]
CLASSES = {"word": WordTokenizer, "bpe": HFTokenizer, "wordpiece": HFTokenizer, "sentencepiece": SentencePieceTokenizer}


def make_corpus(n: int = 200, seed: int = 0) -> list[str]:
    """PTB-style sentences: lowercase, space-separated, with word-internal punctuation and literal <unk>."""
    rng = random.Random(seed)
    subjects = ["the cat", "a dog", "mr. smith", "the u.s. company", "my friend", "the old man", "she", "they"]
    verbs = ["saw", "liked", "did n't like", "bought", "sold", "watched", "found", "wanted"]
    objects = ["the red ball", "a big house", "the company 's shares", "some <unk>", "the third-quarter results",
               "a green car", "the blue sky", "an apple"]
    ends = [".", "!", "today .", "yesterday .", ", he said ."]
    return [" ".join([rng.choice(subjects), rng.choice(verbs), rng.choice(objects), rng.choice(ends)]) for _ in range(n)]


CORPUS = make_corpus()


@pytest.fixture(scope="module", params=TYPES)
def tok(request) -> Tokenizer:
    return train_tokenizer(CORPUS, TokenizerConfig(type=request.param, vocab_size=120))


# ---------------------------------------------------------------- every type


def test_trains_the_right_class(tok: Tokenizer) -> None:
    assert isinstance(tok, CLASSES[tok.type_name])
    assert 20 < tok.vocab_size <= 120


def test_round_trip(tok: Tokenizer) -> None:
    for s in CORPUS[:50]:
        ids = tok.encode(s)
        assert " ".join(tok.decode(ids).split()) == s
        if tok.type_name == "word":
            assert tok.decode(ids) == s
    assert "u.s." in tok.decode(tok.encode("the u.s. company did n't like it ."))


def test_special_ids(tok: Tokenizer) -> None:
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert [tok.id_to_token(i) for i in range(4)] == [PAD, BOS, EOS, UNK]
    assert [tok.token_to_id(t) for t in (PAD, BOS, EOS, UNK)] == [0, 1, 2, 3]
    emitted = {i for ids in tok.batch_encode(CORPUS) for i in ids}
    assert emitted.isdisjoint({0, 1, 2})
    assert max(emitted) < tok.vocab_size
    assert set(tok.encode(f"the cat {PAD} {BOS} {EOS} saw")).isdisjoint({0, 1, 2})


def test_literal_unk_is_unk_id(tok: Tokenizer) -> None:
    ids = tok.encode("the cat saw some <unk> today .")
    assert ids.count(tok.unk_id) == 1
    assert tok.decode(ids) == "the cat saw some <unk> today ."
    assert tok.decode(tok.encode("<unk> saw <unk>")) == "<unk> saw <unk>"
    assert sum(tok.id_to_token(i) == UNK for i in range(tok.vocab_size)) == 1


def test_unknown_token_to_id_is_unk(tok: Tokenizer) -> None:
    assert tok.token_to_id("definitely-not-a-token-xyz") == tok.unk_id
    tokens = [tok.id_to_token(i) for i in range(tok.vocab_size)]
    assert [tok.token_to_id(t) for t in tokens] == list(range(tok.vocab_size))
    with pytest.raises(IndexError):
        tok.id_to_token(tok.vocab_size)


def test_tokenize_matches_encode(tok: Tokenizer) -> None:
    s = CORPUS[3]
    assert [tok.token_to_id(t) for t in tok.tokenize(s)] == tok.encode(s)


def test_batch_encode_and_decode_match_single(tok: Tokenizer) -> None:
    texts = CORPUS[:30] + ["", "an unseen zebra sentence", "<unk> <unk> the cat"]
    batch = tok.batch_encode(texts)
    assert batch == [tok.encode(t) for t in texts]
    assert tok.batch_decode(batch) == [tok.decode(ids) for ids in batch]
    assert tok.encode("") == []


def test_decode_skips_pad_bos_and_stops_at_eos(tok: Tokenizer) -> None:
    s = CORPUS[0]
    ids = tok.encode(s)
    junk = tok.encode("a green car")
    padded = [tok.bos_id] + ids + [tok.eos_id] + junk + [tok.pad_id] * 3
    assert tok.decode(padded) == tok.decode(ids)
    assert tok.decode([tok.pad_id, tok.bos_id] + ids + [tok.pad_id]) == tok.decode(ids)
    assert tok.decode(torch.tensor(padded)) == tok.decode(ids)
    assert tok.decode(np.array(padded)) == tok.decode(ids)
    assert tok.decode([tok.eos_id] + ids) == ""
    rows = torch.tensor([padded, padded[::-1]])
    assert tok.batch_decode(rows) == [tok.decode(padded), tok.decode(padded[::-1])]
    with pytest.raises(TokenizerError):
        tok.decode(rows)


def test_save_load_identical(tok: Tokenizer, tmp_path) -> None:
    folder = tmp_path / "nested" / "tok"
    tok.save(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["type"] == tok.type_name
    loaded = load_tokenizer(folder)
    assert type(loaded) is type(tok) and loaded.type_name == tok.type_name
    assert loaded.vocab_size == tok.vocab_size
    texts = CORPUS + ["an unseen zebra sentence !", "The CAT"]
    assert loaded.batch_encode(texts) == tok.batch_encode(texts)
    assert [loaded.id_to_token(i) for i in range(tok.vocab_size)] == [tok.id_to_token(i) for i in range(tok.vocab_size)]


def test_pickle(tok: Tokenizer) -> None:
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.batch_encode(CORPUS[:20]) == tok.batch_encode(CORPUS[:20])


@pytest.mark.parametrize("kind", TYPES)
def test_lowercase(kind: str, tmp_path) -> None:
    tok = train_tokenizer([s.upper() for s in CORPUS], TokenizerConfig(type=kind, vocab_size=120, lowercase=True))
    assert tok.encode("THE Cat SAW an Apple .") == tok.encode("the cat saw an apple .")
    assert tok.unk_id not in tok.encode("the cat saw an apple .")
    tok.save(tmp_path)
    assert load_tokenizer(tmp_path).encode("The CAT") == tok.encode("the cat")


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "sentencepiece"])
def test_subword_splits_unseen_words(kind: str) -> None:
    tok = train_tokenizer(CORPUS, TokenizerConfig(type=kind, vocab_size=120))
    ids = tok.encode("catdog")
    assert len(ids) > 1 and tok.unk_id not in ids
    assert tok.decode(ids) == "catdog"


# ---------------------------------------------------------------- word level


def word(sentences: list[str], **kw) -> WordTokenizer:
    return train_tokenizer(sentences, TokenizerConfig(type="word", **kw))


def vocab(tok: Tokenizer) -> list[str]:
    return [tok.id_to_token(i) for i in range(tok.vocab_size)]


def test_word_order_by_count_then_alphabet() -> None:
    sentences = ["zeta beta zeta", "alpha zeta beta", "gamma delta"]
    assert vocab(word(sentences)) == [PAD, BOS, EOS, UNK, "zeta", "beta", "alpha", "delta", "gamma"]
    assert vocab(word(sentences[::-1])) == vocab(word(sentences))


def test_word_min_count() -> None:
    sentences = ["a a a b b c", "a b d d"]  # counts a=4 b=3 d=2 c=1
    tok = word(sentences, min_count=2)
    assert vocab(tok)[4:] == ["a", "b", "d"]
    assert tok.encode("a c d e") == [4, tok.unk_id, 6, tok.unk_id]
    assert vocab(word(sentences, min_count=4))[4:] == ["a"]


def test_word_vocab_size_cap() -> None:
    tok = word(CORPUS, vocab_size=10)
    assert tok.vocab_size == 10
    counts: dict[str, int] = {}
    for s in CORPUS:
        for w in s.split():
            counts[w] = counts.get(w, 0) + 1
    counts.pop(UNK)
    expected = sorted(counts, key=lambda w: (-counts[w], w))[:6]
    assert vocab(tok)[4:] == expected
    with pytest.raises(TokenizerError, match="vocab_size"):
        word(CORPUS, vocab_size=3)


def test_word_ptb_unk_not_duplicated(tmp_path) -> None:
    sentences = ["the <unk> sat", "<unk> <unk> <unk> ran", "the cat"]  # <unk> is the most frequent token
    tok = word(sentences)
    assert vocab(tok) == [PAD, BOS, EOS, UNK, "the", "cat", "ran", "sat"]
    assert tok.encode("the <unk> sat") == [4, 3, 7]
    assert tok.encode("the dog sat") == [4, 3, 7]
    tok.save(tmp_path)
    assert (tmp_path / "vocab.txt").read_text().split("\n")[:-1] == vocab(tok)


def test_word_decode_is_exact() -> None:
    tok = word(CORPUS)
    assert tok.decode(tok.encode(CORPUS[7])) == CORPUS[7]
    assert tok.decode(tok.encode("the zebra saw")) == "the <unk> saw"


# ---------------------------------------------------------------- errors


def test_load_missing_folder(tmp_path) -> None:
    missing = tmp_path / "no_such_tokenizer"
    with pytest.raises(TokenizerError, match="no_such_tokenizer"):
        load_tokenizer(missing)


def test_load_folder_without_config(tmp_path) -> None:
    with pytest.raises(TokenizerError, match="tokenizer_config.json"):
        load_tokenizer(tmp_path)


def test_load_missing_backend_file(tmp_path) -> None:
    word(CORPUS).save(tmp_path)
    (tmp_path / "vocab.txt").unlink()
    with pytest.raises(TokenizerError, match="vocab.txt"):
        load_tokenizer(tmp_path)


def test_load_unknown_type(tmp_path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"type": "sentencepeice"}))
    with pytest.raises(TokenizerError, match="did you mean 'sentencepiece'"):
        load_tokenizer(tmp_path)


def test_train_unknown_type() -> None:
    with pytest.raises(ConfigError, match="did you mean 'wordpiece'"):  # checked when the config is built
        train_tokenizer(CORPUS, TokenizerConfig(type="wordpeice"))
