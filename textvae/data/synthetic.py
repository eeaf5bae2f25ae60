"""The embedded synthetic corpus: English sentences generated from templates with known generative factors.

Why: it is the default training data (no download, small vocabulary of 116 word types, 6-12 tokens per sentence,
so a small LSTM VAE learns it in minutes on a CPU), its grammar is an exact acceptance test for decoded or
interpolated sentences (``GRAMMAR.accepts``), and its factor labels make it a ground-truth data set for
disentanglement metrics in the style of disentanglement_lib / dSentences.

Every sentence is ``the SUBJECT VERB-GROUP the OBJECT [LOCATION] .`` or its yes/no question with
subject-auxiliary inversion, lowercase, with punctuation as separate tokens::

    the teacher buys the book .
    did the children not carry the boxes at home ?
    will the doctors have thrown the ball in the garden ?

Ten factors (subject, subject_number, verb, object, object_number, tense, aspect, negation, sentence_type,
location) span 1,209,600 factor vectors. ``realize`` is injective: every factor vector gives a different sentence,
so every factor is visible in the text and there are no collisions; ``parse`` inverts it exactly (a lexicon
proposes the factors, re-realizing them verifies the whole string) and returns ``None`` for anything else.
Objects are portable things and verbs are transitive actions, so every verb-object pair is plausible.
"""

from __future__ import annotations

from itertools import product
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from ..registry import CORPORA
from .base import Corpus

if TYPE_CHECKING:
    from ..config import DataConfig

# (singular, plural) noun forms: people as subjects, portable things as objects (the two sets are disjoint).
SUBJECTS = [
    ("teacher", "teachers"), ("doctor", "doctors"), ("farmer", "farmers"), ("student", "students"),
    ("driver", "drivers"), ("girl", "girls"), ("boy", "boys"), ("man", "men"), ("woman", "women"),
    ("child", "children"),
]
OBJECTS = [
    ("book", "books"), ("box", "boxes"), ("bag", "bags"), ("cup", "cups"), ("hat", "hats"), ("ball", "balls"),
    ("basket", "baskets"), ("bottle", "bottles"), ("key", "keys"), ("toy", "toys"),
]
# (base, third person singular, past, present participle, past participle)
VERBS = [
    ("buy", "buys", "bought", "buying", "bought"),
    ("sell", "sells", "sold", "selling", "sold"),
    ("carry", "carries", "carried", "carrying", "carried"),
    ("bring", "brings", "brought", "bringing", "brought"),
    ("take", "takes", "took", "taking", "taken"),
    ("hold", "holds", "held", "holding", "held"),
    ("drop", "drops", "dropped", "dropping", "dropped"),
    ("hide", "hides", "hid", "hiding", "hidden"),
    ("find", "finds", "found", "finding", "found"),
    ("lose", "loses", "lost", "losing", "lost"),
    ("keep", "keeps", "kept", "keeping", "kept"),
    ("throw", "throws", "threw", "throwing", "thrown"),
]
LOCATIONS = ["", "at home", "at school", "at the market", "in the garden", "in the kitchen", "on the train"]

FACTOR_VALUES: dict[str, list[str]] = {
    "subject": [s for s, _ in SUBJECTS],
    "subject_number": ["singular", "plural"],
    "verb": [v[0] for v in VERBS],
    "object": [o for o, _ in OBJECTS],
    "object_number": ["singular", "plural"],
    "tense": ["past", "present", "future"],
    "aspect": ["simple", "progressive", "perfect"],
    "negation": ["affirmative", "negative"],
    "sentence_type": ["statement", "question"],
    "location": ["none"] + LOCATIONS[1:],
}
SUBJ, SUBJ_NUM, VERB, OBJ, OBJ_NUM, TENSE, ASPECT, NEG, STYPE, LOC = range(len(FACTOR_VALUES))
PAST, PRESENT, FUTURE = range(3)
SIMPLE, PROGRESSIVE, PERFECT = range(3)
BASE, THIRD, PAST_FORM, ING, PARTICIPLE = range(5)


class SentenceGrammar:
    """A deterministic template grammar over ten factors, with exact realization and parsing."""

    def __init__(self) -> None:
        self.factor_names: list[str] = list(FACTOR_VALUES)
        self.factor_values: dict[str, list[str]] = {k: list(v) for k, v in FACTOR_VALUES.items()}
        self.factors_num_values: list[int] = [len(v) for v in FACTOR_VALUES.values()]
        self.num_factors: int = len(self.factor_names)
        self._locations = [loc.split() for loc in LOCATIONS]
        self._lexicon = self._build_lexicon()

    # ------------------------------------------------------------------ sizes and indices

    @property
    def num_sentences(self) -> int:
        """Number of distinct factor vectors, and so of distinct sentences (``realize`` is injective)."""
        return int(np.prod(self.factors_num_values))

    def vocabulary(self) -> list[str]:
        """Every word type the grammar can produce, sorted."""
        words = {"the", ".", "?", "not", "will", "be", "do", "does", "did", "is", "are", "was", "were",
                 "have", "has", "had"}
        words.update(w for pair in SUBJECTS + OBJECTS for w in pair)
        words.update(w for forms in VERBS for w in forms)
        words.update(w for loc in self._locations for w in loc)
        return sorted(words)

    def index_of(self, factors: np.ndarray) -> np.ndarray:
        """Mixed-radix index in ``[0, num_sentences)`` of each factor row (shape (n, K) -> (n,))."""
        return np.ravel_multi_index(np.asarray(factors, dtype=np.int64).T, self.factors_num_values)

    def factors_of(self, index: np.ndarray) -> np.ndarray:
        """Factor rows (n, K) of mixed-radix indices (n,); inverse of ``index_of``."""
        return np.stack(np.unravel_index(np.asarray(index, dtype=np.int64), self.factors_num_values), axis=1)

    # ------------------------------------------------------------------ realization

    def realize(self, factors: Sequence[int]) -> str:
        """The one sentence for one factor vector."""
        f = [int(x) for x in factors]
        if len(f) != self.num_factors or any(not 0 <= x < n for x, n in zip(f, self.factors_num_values)):
            raise ValueError(f"factor vector {list(factors)} does not fit factors_num_values {self.factors_num_values}")
        plural, tense, aspect = f[SUBJ_NUM] == 1, f[TENSE], f[ASPECT]
        negative, question = f[NEG] == 1, f[STYPE] == 1
        forms = VERBS[f[VERB]]
        aux: Optional[str]
        if aspect == SIMPLE:
            if tense == FUTURE:
                aux, rest = "will", [forms[BASE]]
            elif negative or question:
                aux, rest = ("did" if tense == PAST else "do" if plural else "does"), [forms[BASE]]
            else:
                aux, rest = None, [forms[PAST_FORM] if tense == PAST else forms[BASE] if plural else forms[THIRD]]
        elif aspect == PROGRESSIVE:
            if tense == FUTURE:
                aux, rest = "will", ["be", forms[ING]]
            else:
                aux, rest = ("were" if plural else "was") if tense == PAST else ("are" if plural else "is"), [forms[ING]]
        else:
            if tense == FUTURE:
                aux, rest = "will", ["have", forms[PARTICIPLE]]
            else:
                aux, rest = "had" if tense == PAST else "have" if plural else "has", [forms[PARTICIPLE]]
        subject = ["the", SUBJECTS[f[SUBJ]][f[SUBJ_NUM]]]
        neg = ["not"] if negative else []
        head = [aux, *subject, *neg] if question else [*subject, *([aux] if aux else []), *neg]
        tokens = head + rest + ["the", OBJECTS[f[OBJ]][f[OBJ_NUM]], *self._locations[f[LOC]], "?" if question else "."]
        return " ".join(tokens)

    # ------------------------------------------------------------------ parsing

    def _build_lexicon(self) -> dict[str, list[tuple[int, int]]]:
        """Word -> the (factor, value) pairs it fixes; each content word belongs to one slot only."""
        lexicon: dict[str, list[tuple[int, int]]] = {"not": [(NEG, 1)]}

        def add(word: str, pairs: list[tuple[int, int]]) -> None:
            if word in lexicon and lexicon[word] != pairs:
                raise AssertionError(f"ambiguous word {word!r} in the grammar lexicon")
            lexicon[word] = pairs

        for i, pair in enumerate(SUBJECTS):
            for number, word in enumerate(pair):
                add(word, [(SUBJ, i), (SUBJ_NUM, number)])
        for i, pair in enumerate(OBJECTS):
            for number, word in enumerate(pair):
                add(word, [(OBJ, i), (OBJ_NUM, number)])
        for i, forms in enumerate(VERBS):
            for word in forms:
                add(word, [(VERB, i)])
        for i, loc in enumerate(self._locations[1:], start=1):
            add(loc[-1], [(LOC, i)])  # the head noun of each location phrase is unique
        return lexicon

    def parse(self, sentence: str) -> Optional[np.ndarray]:
        """The factor vector of a sentence the grammar generates, else ``None`` (runs of whitespace are tolerated)."""
        tokens = sentence.split()
        if len(tokens) < 4 or tokens[-1] not in (".", "?"):
            return None
        found: dict[int, int] = {}
        for word in tokens[:-1]:
            for factor, value in self._lexicon.get(word, ()):
                if found.setdefault(factor, value) != value:
                    return None  # e.g. two different verbs
        if not {SUBJ, VERB, OBJ} <= found.keys():
            return None
        found[STYPE] = int(tokens[-1] == "?")  # negation and location default to 0 (absent)
        target = " ".join(tokens)
        factors = [found.get(k, 0) for k in range(self.num_factors)]  # tense and aspect are searched below
        for tense, aspect in product(range(3), range(3)):
            factors[TENSE], factors[ASPECT] = tense, aspect
            if self.realize(factors) == target:
                return np.array(factors, dtype=np.int64)
        return None

    def accepts(self, sentence: str) -> bool:
        """Whether the grammar generates ``sentence``."""
        return self.parse(sentence) is not None

    # ------------------------------------------------------------------ ground-truth data protocol

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor vectors drawn independently and uniformly, shape (n, num_factors)."""
        return np.stack([rng.integers(0, k, size=n) for k in self.factors_num_values], axis=1).astype(np.int64)

    def sample_observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> list[str]:
        """The sentence of each factor row; realization is deterministic, so ``rng`` is unused."""
        return [self.realize(row) for row in np.asarray(factors)]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
        """``n`` random factor vectors and their sentences."""
        factors = self.sample_factors(n, rng)
        return factors, self.sample_observations_from_factors(factors, rng)


GRAMMAR = SentenceGrammar()


def load_synthetic_corpus(
    num_sentences: int = 24000, seed: int = 0, valid_fraction: float = 0.1, test_fraction: float = 0.1
) -> Corpus:
    """``num_sentences`` distinct sentences drawn with ``seed``, split into disjoint train/valid/test."""
    total = GRAMMAR.num_sentences
    if num_sentences < 1:
        raise ValueError(f"num_sentences must be positive, got {num_sentences}")
    if num_sentences > total:
        raise ValueError(f"num_sentences={num_sentences} exceeds the {total} distinct sentences of the grammar")
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(f"valid_fraction={valid_fraction} and test_fraction={test_fraction} must be in [0, 1) "
                         "and sum to less than 1")
    rng = np.random.default_rng(seed)
    factors = GRAMMAR.factors_of(rng.choice(total, size=num_sentences, replace=False))
    sentences = [GRAMMAR.realize(row) for row in factors.tolist()]
    n_valid, n_test = round(num_sentences * valid_fraction), round(num_sentences * test_fraction)
    bounds = {"train": (0, num_sentences - n_valid - n_test),
              "valid": (num_sentences - n_valid - n_test, num_sentences - n_test),
              "test": (num_sentences - n_test, num_sentences)}
    split = {name: sentences[a:b] for name, (a, b) in bounds.items()}
    return Corpus(
        name="synthetic",
        train=split["train"],
        valid=split["valid"],
        test=split["test"],
        factor_names=list(GRAMMAR.factor_names),
        factors={name: factors[a:b] for name, (a, b) in bounds.items()},
        info={"seed": seed, "factors_num_values": list(GRAMMAR.factors_num_values),
              "factor_values": GRAMMAR.factor_values, "num_distinct_sentences": total},
    )


@CORPORA.register("synthetic")
def synthetic_corpus(config: DataConfig, seed: int | None = None) -> Corpus:
    """Registry entry: ``config.synthetic_size`` sentences drawn with ``config.synthetic_seed`` (or ``seed``)."""
    return load_synthetic_corpus(config.synthetic_size, seed=config.synthetic_seed if seed is None else seed)
