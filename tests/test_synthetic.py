"""Tests of the synthetic corpus: determinism, splits, exact parsing, factor visibility, vocabulary."""

from __future__ import annotations

import time

import numpy as np
import pytest

from textvae.data.synthetic import GRAMMAR, SentenceGrammar, load_synthetic_corpus
from textvae.registry import CORPORA


@pytest.fixture(scope="module")
def corpus():
    """The default corpus (24,000 sentences, seed 0)."""
    return load_synthetic_corpus()


def test_grammar_shape():
    """Factor names, sizes and counts agree with each other."""
    g = SentenceGrammar()
    assert g.num_factors == len(g.factor_names) == len(g.factors_num_values) >= 6
    assert all(n >= 2 for n in g.factors_num_values)
    assert g.num_sentences == int(np.prod(g.factors_num_values))
    assert [len(g.factor_values[name]) for name in g.factor_names] == g.factors_num_values


def test_deterministic_per_seed(corpus):
    """Same seed, same sentences and factors; another seed, other sentences."""
    again = load_synthetic_corpus(seed=0)
    other = load_synthetic_corpus(seed=1)
    for split in ("train", "valid", "test"):
        assert again.split(split) == corpus.split(split)
        np.testing.assert_array_equal(again.factors[split], corpus.factors[split])
    assert other.train != corpus.train


def test_sizes_and_disjoint_splits(corpus):
    """24,000 distinct sentences split 80/10/10 with no sentence in two splits."""
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (19200, 2400, 2400)
    every = corpus.train + corpus.valid + corpus.test
    assert len(set(every)) == len(every) == 24000
    assert corpus.name == "synthetic" and corpus.factor_names == GRAMMAR.factor_names
    assert corpus.info["seed"] == 0 and corpus.info["factors_num_values"] == GRAMMAR.factors_num_values
    for split in ("train", "valid", "test"):
        assert corpus.factors[split].shape == (len(corpus.split(split)), GRAMMAR.num_factors)


def test_loading_is_fast():
    """The default corpus loads in well under a second (generous bound for slow machines)."""
    start = time.perf_counter()
    load_synthetic_corpus()
    assert time.perf_counter() - start < 2.0


def test_other_sizes_and_errors():
    """Custom sizes and fractions work; impossible requests fail naming the numbers."""
    small = load_synthetic_corpus(100, seed=3, valid_fraction=0.2, test_fraction=0.05)
    assert (len(small.train), len(small.valid), len(small.test)) == (75, 20, 5)
    with pytest.raises(ValueError, match=f"{GRAMMAR.num_sentences + 1}.*{GRAMMAR.num_sentences}"):
        load_synthetic_corpus(GRAMMAR.num_sentences + 1)
    with pytest.raises(ValueError):
        load_synthetic_corpus(100, valid_fraction=0.6, test_fraction=0.5)


def test_every_sentence_parses_to_its_factors(corpus):
    """Factors are recoverable from the text: parse inverts realize on the whole corpus."""
    for split in ("train", "valid", "test"):
        for sentence, factors in zip(corpus.split(split), corpus.factors[split]):
            parsed = GRAMMAR.parse(sentence)
            assert parsed is not None, sentence
            np.testing.assert_array_equal(parsed, factors)
            assert GRAMMAR.realize(factors) == sentence


def test_surface_format(corpus):
    """Lowercase, single spaces, 3-14 tokens, ' ?' for questions and ' .' for statements."""
    question = GRAMMAR.factor_names.index("sentence_type")
    for sentence, factors in zip(corpus.train, corpus.factors["train"]):
        tokens = sentence.split(" ")
        assert sentence == sentence.lower() and "" not in tokens
        assert 3 <= len(tokens) <= 14
        assert tokens[-1] == ("?" if factors[question] == 1 else ".")


@pytest.mark.parametrize(
    "sentence",
    [
        "the man buy the book .",  # agreement: he walk
        "the men buys the book .",
        "does the men buy the book ?",
        "do the man buy the book ?",
        "the men is buying the book .",
        "the man were buying the book .",
        "the men has bought the book .",
        "did the man bought the book ?",
        "the man will buys the book .",
        "the man has took the book .",
        "the man does not buys the book .",
        "the man is not buy the book .",
        "the man buys the book ?",  # statement word order with a question mark
        "does the man buy the book .",
        "the man not buys the book .",
        "the man buys the zebra .",  # unknown word
        "the man buys the book quickly .",
        "the man buys the book",  # no punctuation
        "the man buys the book . .",
        "the man buys sells the book .",
        "the man buys the book the box .",
        "The man buys the book .",  # the grammar is lowercase
        "",
        "?",
    ],
)
def test_rejects_ungrammatical(sentence):
    """Wrong agreement, word order, unknown words and malformed strings are not accepted."""
    assert GRAMMAR.parse(sentence) is None
    assert not GRAMMAR.accepts(sentence)


def test_rejects_shuffled_sentences(corpus):
    """Any reordering of a sentence's tokens that differs from it is rejected."""
    rng = np.random.default_rng(0)
    checked = 0
    for sentence in corpus.train[:300]:
        tokens = sentence.split(" ")
        shuffled = " ".join(rng.permutation(tokens))
        if shuffled != sentence:
            assert not GRAMMAR.accepts(shuffled), shuffled
            checked += 1
    assert checked > 250


def test_accepts_known_sentences():
    """Hand-written sentences of every construction parse to the expected factor values."""
    g = GRAMMAR
    cases = {
        "the teacher buys the book .": dict(tense="present", aspect="simple", negation="affirmative"),
        "does the teacher not buy the books ?": dict(tense="present", negation="negative", sentence_type="question"),
        "did the children carry the boxes at home ?": dict(tense="past", subject="child", subject_number="plural"),
        "the woman is not hiding the key .": dict(aspect="progressive", negation="negative"),
        "will the men have thrown the ball in the garden ?": dict(tense="future", aspect="perfect", location="in the garden"),
        "the girls will be taking the cups on the train .": dict(tense="future", aspect="progressive", object_number="plural"),
        "the doctor had lost the toy .": dict(tense="past", aspect="perfect", location="none"),
    }
    for sentence, expected in cases.items():
        parsed = g.parse(sentence)
        assert parsed is not None, sentence
        for name, value in expected.items():
            i = g.factor_names.index(name)
            assert g.factor_values[name][parsed[i]] == value, (sentence, name)


def test_every_factor_is_visible():
    """Changing any single factor of a random vector changes the sentence (measured collision rate: 0)."""
    rng = np.random.default_rng(1)
    collisions = trials = 0
    for row in GRAMMAR.sample_factors(300, rng):
        base = GRAMMAR.realize(row)
        for k, n in enumerate(GRAMMAR.factors_num_values):
            for value in range(n):
                if value != row[k]:
                    changed = row.copy()
                    changed[k] = value
                    collisions += GRAMMAR.realize(changed) == base
                    trials += 1
    assert trials > 10000
    # realize is injective (checked exhaustively over all 1,209,600 vectors when the grammar was written)
    assert collisions / trials == 0.0


def test_vocabulary_size(corpus):
    """The grammar uses 100-250 word types and the default corpus covers all of them."""
    vocab = GRAMMAR.vocabulary()
    assert 100 <= len(vocab) <= 250
    seen = {w for s in corpus.train for w in s.split(" ")}
    assert seen == set(vocab)


def test_ground_truth_protocol_round_trip():
    """sample_observations_from_factors(sample_factors(...)) parses back to the sampled factors."""
    rng = np.random.default_rng(2)
    factors = GRAMMAR.sample_factors(500, rng)
    assert factors.shape == (500, GRAMMAR.num_factors) and factors.dtype.kind == "i"
    assert (factors >= 0).all() and (factors < np.array(GRAMMAR.factors_num_values)).all()
    sentences = GRAMMAR.sample_observations_from_factors(factors, rng)
    np.testing.assert_array_equal(np.stack([GRAMMAR.parse(s) for s in sentences]), factors)
    again, observed = GRAMMAR.sample(10, np.random.default_rng(5))
    assert observed == GRAMMAR.sample_observations_from_factors(again, None)


def test_index_round_trip():
    """factors_of inverts index_of over the mixed-radix factor space."""
    index = np.array([0, 1, 12345, GRAMMAR.num_sentences - 1])
    np.testing.assert_array_equal(GRAMMAR.index_of(GRAMMAR.factors_of(index)), index)


def test_realize_rejects_out_of_range():
    """Factor vectors of the wrong length or with values out of range fail."""
    with pytest.raises(ValueError):
        GRAMMAR.realize([0] * (GRAMMAR.num_factors - 1))
    with pytest.raises(ValueError):
        GRAMMAR.realize([GRAMMAR.factors_num_values[0]] + [0] * (GRAMMAR.num_factors - 1))


def test_registered_loader():
    """CORPORA['synthetic'] builds the corpus from a DataConfig's synthetic_size."""
    from textvae.config import DataConfig

    loader = CORPORA.get("synthetic")
    corpus = loader(DataConfig(synthetic_size=1000))
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (800, 100, 100)
    assert loader(DataConfig(synthetic_size=1000), seed=4).train != corpus.train
