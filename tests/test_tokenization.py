"""Tests for textvae.data.tokenization: the four tokenizer types on tiny made-up corpora."""

from __future__ import annotations

import json
import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from textvae.config import ConfigError, TokenizerConfig
from textvae.data.tokenization import (
    BOS,
    EOS,
    PAD,
    SPECIALS,
    UNK,
    HFTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    TokenizerError,
    WordTokenizer,
    load_tokenizer,
    train_tokenizer,
)
from textvae.data.words import detokenize, split_words

TYPES = ["word", "bpe", "wordpiece", "sentencepiece"]
CLASSES = {"word": WordTokenizer, "bpe": HFTokenizer, "wordpiece": HFTokenizer, "sentencepiece": SentencePieceTokenizer}
# sizes CORPUS fills: byte-level BPE and SentencePiece with byte fallback start from 256 byte pieces
SIZES = {"word": 120, "bpe": 300, "wordpiece": 120, "sentencepiece": 300}


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
    return train_tokenizer(CORPUS, TokenizerConfig(type=request.param, vocab_size=SIZES[request.param]))


# ---------------------------------------------------------------- every type


def test_trains_the_right_class(tok: Tokenizer) -> None:
    assert isinstance(tok, CLASSES[tok.type_name])
    assert 20 < tok.vocab_size <= SIZES[tok.type_name]


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
    tok = train_tokenizer([s.upper() for s in CORPUS], TokenizerConfig(type=kind, vocab_size=SIZES[kind], lowercase=True))
    assert tok.encode("THE Cat SAW an Apple .") == tok.encode("the cat saw an apple .")
    assert tok.unk_id not in tok.encode("the cat saw an apple .")
    tok.save(tmp_path)
    assert load_tokenizer(tmp_path).encode("The CAT") == tok.encode("the cat")


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "sentencepiece"])
def test_subword_splits_unseen_words(kind: str) -> None:
    tok = train_tokenizer(CORPUS, TokenizerConfig(type=kind, vocab_size=SIZES[kind]))
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


# ---------------------------------------------------------------- raw text

PTB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ptb"
# hard PTB lines: specials, clitics, dotted and listed abbreviations (also at the end), escapes, currencies
PTB_LINES = [
    " mr. <unk> is chairman of <unk> n.v. the dutch publishing group ",
    " the company 's shares did n't rise and they 're worth $ N a share in the u.s.",
    " the los angeles calif.-based unit of at&t corp. sold s&p 's N u.s.-soviet bonds at N a.m. vs. N p.m",
    " mgm\\/ua 's \\* shares of c$ N and hk$ N for no. N o'kicki in the '80s it raised lire by s.p a.",
    " sales in the third-quarter were over-the-counter at & t # N i. smith ill. said messrs. jones & co.",
]
RAW = [
    "A man holds an umbrella.",
    "Two dogs play with a red ball, and they're happy!",
    "Don't touch the dogs' bowl; it's Mr. Smith's.",
    'She said "hello" (twice) at 5:30 p.m. in the U.S.',
    "The guitar costs $1,250.50, or 10% less.",
    "I ❤️ New York 😀👍🏽",
    "Привет, мир! Γειά σου, κόσμε.",
]


def test_split_words_ptb_style() -> None:
    assert split_words("A man holds an umbrella.") == ["A", "man", "holds", "an", "umbrella", "."]
    assert split_words("Don't, it's the dogs' bowl. I can't!") == [
        "Do", "n't", ",", "it", "'s", "the", "dogs", "'", "bowl", ".", "I", "ca", "n't", "!"]
    assert split_words("Mr. Smith of the U.S. saw no. 5 and said no.") == [
        "Mr.", "Smith", "of", "the", "U.S.", "saw", "no.", "5", "and", "said", "no", "."]
    assert split_words("So did I. J. Doe's 3.5% (1,000) wait... <unk> http://a.b/c.") == [
        "So", "did", "I.", "J.", "Doe", "'s", "3.5", "%", "(", "1,000", ")", "wait", "...", "<unk>", "http://a.b/c", "."]
    assert split_words("So did I.")[-2:] == ["I", "."]
    assert split_words("👨\u200d👩\u200d👧 hi😀!") == ["👨\u200d👩\u200d👧", "hi", "😀", "!"]


def test_detokenize_inverts_split_words() -> None:
    for s in RAW + ["Wait... what?! \"Yes,\" he said -- really.", "Don’t go ‘there’.", "The dogs' toys, 'quoted'."]:
        assert detokenize(split_words(s)) == s


def test_ptb_lines_split_as_whitespace() -> None:
    for line in PTB_LINES + CORPUS:
        assert split_words(line) == line.split()
    new = word(CORPUS)
    assert new.pretokenize and not new.detokenize  # PTB-style text: decode keeps joining words with spaces
    assert new.batch_encode(PTB_LINES) == word(CORPUS, pretokenize=False).batch_encode(PTB_LINES)


@pytest.mark.skipif(not PTB.is_dir(), reason=f"PTB not found at {PTB}")
def test_ptb_files_split_as_whitespace() -> None:
    for split in ("train", "valid", "test"):
        lines = (PTB / f"ptb.{split}.txt").read_text(encoding="utf-8").splitlines()
        bad = [line for line in lines if split_words(line) != line.split()]
        assert not bad, f"{len(bad)} of {len(lines)} ptb.{split} lines split differently, e.g. {bad[0]!r}"


def test_word_on_raw_text() -> None:
    captions = ["A man plays a guitar.", "A woman holds an umbrella.", "A dog runs, and a man plays."]
    tok = word(captions)
    entries = vocab(tok)
    assert "guitar" in entries and "." in entries and not any(w.endswith(".") and len(w) > 1 for w in entries)
    assert tok.tokenize("A man holds a guitar.") == ["A", "man", "holds", "a", "guitar", "."]
    assert tok.detokenize  # raw training text: decode re-attaches punctuation
    assert tok.decode(tok.encode("A man holds a guitar.")) == "A man holds a guitar."
    assert tok.decode(tok.encode("A cat holds a guitar.")) == "A <unk> holds a guitar."
    joined = word(captions, detokenize="never")
    assert joined.decode(joined.encode("A man holds a guitar.")) == "A man holds a guitar ."


def test_word_lowercase_and_ptb_numbers() -> None:
    tok = word(["It costs $5.50, or 1,000 yen in 2024 (the 1990s)."], lowercase=True, numbers="ptb")
    assert tok.words("It costs $5.50, or 1,000 yen in 2024 (the 1990s).") == [
        "it", "costs", "$", "N", ",", "or", "N", "yen", "in", "N", "(", "the", "1990s", ")", "."]
    assert tok.decode(tok.encode("It costs $7, or 3 yen.")) == "it costs $N, or N yen."


RAW_SIZES = {**SIZES, "wordpiece": 200, "sentencepiece": 400}  # a piece for every character of RAW (and bytes)


@pytest.mark.filterwarnings("ignore:.*requested")
@pytest.mark.parametrize("kind", TYPES)
def test_raw_text_round_trip(kind: str) -> None:
    tok = train_tokenizer(RAW * 3, TokenizerConfig(type=kind, vocab_size=RAW_SIZES[kind]))
    for s in RAW:
        if kind == "wordpiece":  # whitespace-split: punctuation stays on words, exact up to whitespace
            assert tok.decode(tok.encode(s)) == " ".join(s.split())
        else:
            assert tok.decode(tok.encode(s)) == s
    unseen = "Über-cool 🦄 naïve café, 日本語のテキスト!"
    if kind == "bpe":  # byte-level: never unknown, exact, whitespace included
        assert tok.decode(tok.encode("  " + unseen + "\n")) == "  " + unseen + "\n"
    if kind == "sentencepiece":  # byte fallback: exact up to whitespace
        assert tok.unk_id not in tok.encode(unseen)
        assert tok.decode(tok.encode("  two  spaces " + unseen)) == "two spaces " + unseen
    if kind == "wordpiece":  # documented: characters never seen are unknown
        assert tok.unk_id in tok.encode("🦄")


@pytest.mark.filterwarnings("ignore:.*requested")
@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_subword_lowercase_round_trip(kind: str) -> None:
    tok = train_tokenizer(RAW, TokenizerConfig(type=kind, vocab_size=RAW_SIZES[kind], lowercase=True))
    assert tok.decode(tok.encode(RAW[2])) == RAW[2].lower()


@pytest.mark.filterwarnings("ignore:.*requested")
@pytest.mark.parametrize("kind", TYPES)
def test_corpus_unk_token_is_unk(kind: str) -> None:
    corpus = ["the _UNK sat on the mat .", "a _UNK ran in the _UNK .", "the dog sat ."] * 5
    tok = train_tokenizer(corpus, TokenizerConfig(type=kind, vocab_size=SIZES[kind], unk_token="_UNK"))
    assert not any("UNK" in tok.id_to_token(i) for i in range(tok.vocab_size))  # never learned
    ids = tok.encode("the _UNK sat .")
    assert ids.count(tok.unk_id) == 1
    assert "<unk>" in tok.decode(ids) and "_UNK" not in tok.decode(ids)
    assert tok.encode("the x_UNKy sat .").count(tok.unk_id) == (1 if kind in ("word", "wordpiece") else 0)


@pytest.mark.parametrize("kind, reason", [("bpe", "has no more merges"), ("wordpiece", "has no more words and pieces to add"),
                                          ("sentencepiece", "supports no more pieces")])
def test_underfilled_vocabulary_warns_once(kind: str, reason: str) -> None:
    with pytest.warns(UserWarning, match=reason) as record:
        tok = train_tokenizer(CORPUS, TokenizerConfig(type=kind, vocab_size=10_000))
    messages = [str(w.message) for w in record if "requested" in str(w.message)]
    assert messages == [f"{kind} tokenizer: trained {tok.vocab_size:,} pieces of the 10,000 requested "
                        f"(data.tokenizer.vocab_size); the training text {reason}"]
    assert tok.vocab_size < 10_000 and tok.requested_size == 10_000
    assert tok.describe().startswith(f"{kind} tokenizer: {tok.vocab_size:,} pieces (10,000 requested")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a size the text fills: no warning
        train_tokenizer(CORPUS, TokenizerConfig(type=kind, vocab_size=SIZES[kind]))


def test_describe() -> None:
    assert word(CORPUS, vocab_size=120).describe() == "word tokenizer: 50 entries (120 requested, min_count 1)"
    bpe = train_tokenizer(CORPUS, TokenizerConfig(type="bpe", vocab_size=300))
    assert bpe.describe() == "bpe tokenizer: 300 pieces (300 requested, byte-level)"


@pytest.mark.parametrize("kind, size, minimum", [("word", 4, 5), ("bpe", 259, 260), ("sentencepiece", 260, 261)])
def test_too_small_vocabulary(kind: str, size: int, minimum: int) -> None:
    with pytest.raises(TokenizerError, match=rf"data.tokenizer.vocab_size {size} .* minimum is {minimum} "):
        train_tokenizer(CORPUS, TokenizerConfig(type=kind, vocab_size=size))
    if kind != "sentencepiece":  # its minimum depends on the text: below
        assert train_tokenizer(CORPUS, TokenizerConfig(type=kind, vocab_size=minimum)).vocab_size == minimum



@pytest.mark.parametrize("kind, size", [("sentencepiece", 270), ("wordpiece", 20), ("bpe", 20)])
def test_minimum_counts_the_characters(kind: str, size: int) -> None:
    # every character of the text needs a piece (SentencePiece: besides the byte pieces), so the minimum depends on
    # the text: the error names it, and it is the smallest size that trains
    config = TokenizerConfig(type=kind, vocab_size=size, byte_level=kind != "bpe")
    with pytest.raises(TokenizerError, match=rf"data.tokenizer.vocab_size {size} .* minimum is (\d+) ") as info:
        train_tokenizer(CORPUS, config)
    minimum = int(info.value.args[0].split("minimum is ")[1].split()[0])
    assert size < minimum <= len(SPECIALS) + 256 * config.byte_level + 2 * len(set("".join(CORPUS)))
    config.vocab_size = minimum
    assert train_tokenizer(CORPUS, config).vocab_size == minimum


def test_old_word_folder_loads_with_whitespace_split(tmp_path) -> None:
    # written as textvae wrote word tokenizers before pre-tokenization: no pretokenize/detokenize settings
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"type": "word", "vocab_size": 10, "min_count": 1,
                                                                "lowercase": False}))
    (tmp_path / "vocab.txt").write_text("\n".join([PAD, BOS, EOS, UNK, "a", "man", "umbrella.", "do", "n't"]) + "\n")
    tok = load_tokenizer(tmp_path)
    assert tok.encode("a man umbrella.") == [4, 5, 6]
    assert tok.encode("a man umbrella .") == [4, 5, 3, 3]
    assert tok.encode("don't") == [3]
    assert tok.decode([4, 5, 7, 8, 6]) == "a man do n't umbrella."
    tok.save(tmp_path / "again")
    assert load_tokenizer(tmp_path / "again").encode("a man umbrella.") == [4, 5, 6]


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_old_subword_folder_loads(kind: str, tmp_path) -> None:
    old = train_tokenizer(CORPUS, TokenizerConfig(type=kind, vocab_size=SIZES["wordpiece"] // 2, byte_level=False))
    old.save(tmp_path)
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text())
    for key in ("byte_level", "byte_fallback", "unk_token"):  # settings that folders saved before lack
        settings.pop(key, None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    loaded = load_tokenizer(tmp_path)
    assert loaded.vocab_size == old.vocab_size <= SIZES["wordpiece"] // 2
    text = "the zebra 😀 saw the u.s. company"
    assert loaded.encode(text) == old.encode(text) and loaded.unk_id in loaded.encode(text)
    assert loaded.decode(loaded.encode(CORPUS[0])) == old.decode(old.encode(CORPUS[0]))
