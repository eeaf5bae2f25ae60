"""dSentences (Mcharrak, 2018): the text analogue of dSprites. 633,600 short sentences, one for every combination
of nine discrete factors, e.g. "i accepted the payment" / "did she not accept the payments".

Only two members of ``dSentences.npz`` are read, with ``allow_pickle=False``: ``sentences_array`` (bytes) and
``latents_classes`` (int64, (N, 9)). The file also holds pickled members (``metadata``, ``df``); they are never
loaded, and a member that would need unpickling raises a ``DataError``.

Factor names, order and row layout follow the data folder's FACTORS.md (checked against the file on load)::

    col  factor          values
    0    verb_obj_tuple  1100  (110 verbs x 10 objects; rows of regular_verb-object_tuples.csv)
    1    obj_number      2     singular, plural
    2    sent_type       2     statement, question
    3    gender          2     male, female (visible only for he/she)
    4    subj_number     2     singular, plural
    5    person          3     1st, 2nd, 3rd
    6    negation        2     affirmative, negated
    7    tense           3     past, present, future
    8    aspect          2     simple, progressive

    row = tuple*576 + obj_number*288 + sent_type*144 + gender*72 + subj_number*36 + person*12 + negation*6
          + aspect*3 + tense

Every factor combination has exactly one row, so ``sample_observations_from_factors`` is a lookup. Several rows can
share a sentence string (gender is invisible in 83% of rows, subject number for "you"): a text encoder cannot
recover those factors there; see ``evaluation.disentanglement`` for the ceilings this sets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from ..errors import DataError
from ..registry import CORPORA
from .base import Corpus

if TYPE_CHECKING:
    from ..config import DataConfig

NPZ_NAME = "dSentences.npz"
FACTOR_NAMES = ["verb_obj_tuple", "obj_number", "sent_type", "gender", "subj_number", "person", "negation", "tense",
                "aspect"]
FACTORS_NUM_VALUES = [1100, 2, 2, 2, 2, 3, 2, 3, 2]
FACTOR_VALUES: dict[str, Optional[list[str]]] = {
    "verb_obj_tuple": None,  # the rows of regular_verb-object_tuples.csv, see DSentences.verb_object_pairs
    "obj_number": ["singular", "plural"],
    "sent_type": ["statement", "question"],
    "gender": ["male", "female"],
    "subj_number": ["singular", "plural"],
    "person": ["1st", "2nd", "3rd"],
    "negation": ["affirmative", "negated"],
    "tense": ["past", "present", "future"],
    "aspect": ["simple", "progressive"],
}
# columns from slowest to fastest in the row index (tense, column 7, varies fastest; then aspect, column 8)
ROW_RADIX_ORDER = [0, 1, 2, 3, 4, 5, 6, 8, 7]
NUM_ROWS = int(np.prod(FACTORS_NUM_VALUES))  # 633,600


def default_dsentences_dirs(data_dir: "str | Path | None" = None) -> list[Path]:
    """Where the data folder is looked for, in order: ``data_dir`` (the folder itself or its parent), then
    ``$TEXTVAE_DATA/dsentences``, then ``../shared/data/dsentences`` beside the repository."""
    candidates: list[Path] = []
    if data_dir:
        path = Path(data_dir).expanduser()
        candidates += [path, path / "dsentences"]
    env = os.environ.get("TEXTVAE_DATA")
    if env:
        candidates.append(Path(env).expanduser() / "dsentences")
    repo = Path(__file__).resolve().parents[2]
    candidates.append(repo.parent / "shared" / "data" / "dsentences")
    return candidates


def find_dsentences_dir(data_dir: "str | Path | None" = None) -> Path:
    """The folder holding ``dSentences.npz``, or a DataError listing where it was looked for."""
    candidates = default_dsentences_dirs(data_dir)
    if data_dir:  # an explicit folder must hold the data; do not fall back silently
        candidates = candidates[:2]
    for folder in candidates:
        if (folder / NPZ_NAME).is_file():
            return folder
    tried = ", ".join(str(c) for c in candidates)
    raise DataError(f"{NPZ_NAME} not found; looked in {tried} (set data.data_dir or TEXTVAE_DATA)")


def load_dsentences_arrays(path: "str | Path") -> tuple[np.ndarray, np.ndarray]:
    """``(sentences_array, latents_classes)`` from the npz, never unpickling anything."""
    path = Path(path)
    if path.is_dir():
        path = path / NPZ_NAME
    if not path.is_file():
        raise DataError(f"dSentences file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [m for m in ("sentences_array", "latents_classes") if m not in npz.files]
            if missing:
                raise DataError(f"{path} has no member {', '.join(missing)} (members: {', '.join(npz.files)})")
            sentences = npz["sentences_array"]
            factors = npz["latents_classes"]
    except ValueError as exc:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
        raise DataError(f"{path}: refusing to unpickle a member ({exc})") from None
    if sentences.ndim != 1 or sentences.dtype.kind not in "SU":
        raise DataError(f"{path}: sentences_array must be a 1-d string array, got {sentences.dtype} {sentences.shape}")
    if factors.shape != (len(sentences), len(FACTOR_NAMES)) or factors.dtype.kind not in "iu":
        raise DataError(f"{path}: latents_classes must be integers of shape ({len(sentences)}, {len(FACTOR_NAMES)}), "
                        f"got {factors.dtype} {factors.shape}")
    return sentences, factors.astype(np.int64, copy=False)


class DSentences:
    """The dSentences data set as ground-truth data (``sample_factors``, ``sample_observations_from_factors``)."""

    factor_names: list[str] = FACTOR_NAMES
    factors_num_values: list[int] = FACTORS_NUM_VALUES
    num_factors: int = len(FACTOR_NAMES)

    def __init__(self, data_dir: "str | Path | None" = None) -> None:
        self.folder = find_dsentences_dir(data_dir)
        self.sentences_array, self.factors = load_dsentences_arrays(self.folder / NPZ_NAME)
        if len(self.factors) != NUM_ROWS or not np.array_equal(self.index_of(self.factors), np.arange(NUM_ROWS)):
            raise DataError(f"{self.folder / NPZ_NAME}: rows are not in the order FACTORS.md gives "
                            f"(row = tuple*576 + ... + aspect*3 + tense over {NUM_ROWS} rows)")

    def __len__(self) -> int:
        return len(self.sentences_array)

    # ------------------------------------------------------------------ rows and factors

    @staticmethod
    def index_of(factors: np.ndarray) -> np.ndarray:
        """Row index of each factor vector (n, 9) -> (n,), by the formula in FACTORS.md."""
        factors = np.asarray(factors, dtype=np.int64)
        radix = [FACTORS_NUM_VALUES[k] for k in ROW_RADIX_ORDER]
        return np.ravel_multi_index(factors[:, ROW_RADIX_ORDER].T, radix)

    @staticmethod
    def factors_of(rows: np.ndarray) -> np.ndarray:
        """Factor vectors (n, 9) of row indices (n,); inverse of ``index_of``."""
        radix = [FACTORS_NUM_VALUES[k] for k in ROW_RADIX_ORDER]
        digits = np.stack(np.unravel_index(np.asarray(rows, dtype=np.int64), radix), axis=1)
        out = np.empty_like(digits)
        out[:, ROW_RADIX_ORDER] = digits
        return out

    def sentences_at(self, rows: Sequence[int]) -> list[str]:
        """The sentences of rows, as str."""
        return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in self.sentences_array[np.asarray(rows)]]

    def all_sentences(self) -> list[str]:
        """Every row's sentence, as str, in row order."""
        return self.sentences_at(np.arange(len(self)))

    def verb_object_pairs(self) -> Optional[list[tuple[str, str]]]:
        """The (verb, object) lemmas of the 1100 tuples from the CSV beside the npz, or None where it is absent."""
        path = self.folder / "regular_verb-object_tuples.csv"
        if not path.is_file():
            return None
        pairs = [tuple(line.strip().split(";")[:2]) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(str(v), str(o)) for v, o in pairs]

    # ------------------------------------------------------------------ ground-truth data protocol

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor vectors, each factor uniform and independent (every combination occurs once in the data)."""
        return np.stack([rng.integers(0, k, size=n) for k in FACTORS_NUM_VALUES], axis=1).astype(np.int64)

    def sample_observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> list[str]:
        """The sentence of the one row with each factor vector (``rng`` unused: the lookup is deterministic)."""
        from .ground_truth import check_factors

        return self.sentences_at(self.index_of(check_factors(self, factors)))


def split_by_sentence(
    sentences: np.ndarray, seed: int = 0, valid_fraction: float = 0.1, test_fraction: float = 0.1
) -> dict[str, np.ndarray]:
    """Row indices per split, shuffled with ``seed``; rows that share a sentence string stay in one split, so no
    test sentence is seen in training."""
    unique, inverse = np.unique(sentences, return_inverse=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    n_valid, n_test = round(len(unique) * valid_fraction), round(len(unique) * test_fraction)
    split_of_string = np.empty(len(unique), dtype=np.int8)
    split_of_string[order[: len(unique) - n_valid - n_test]] = 0
    split_of_string[order[len(unique) - n_valid - n_test : len(unique) - n_test]] = 1
    split_of_string[order[len(unique) - n_test :]] = 2
    row_split = split_of_string[inverse.reshape(-1)]
    rows = rng.permutation(len(sentences))
    return {name: rows[row_split[rows] == k] for k, name in enumerate(("train", "valid", "test"))}


@CORPORA.register("dsentences")
def dsentences_corpus(config: "DataConfig", seed: int | None = None) -> Corpus:
    """Registry entry: every dSentences row, split 80/10/10 by sentence string with ``config.synthetic_seed`` (or
    ``seed``); ``data.data_dir`` names the folder (else ``$TEXTVAE_DATA/dsentences`` or ``../shared/data``)."""
    data = DSentences(config.data_dir)
    split_seed = config.synthetic_seed if seed is None else seed
    rows = split_by_sentence(data.sentences_array, seed=split_seed)
    return Corpus(
        name="dsentences",
        train=data.sentences_at(rows["train"]),
        valid=data.sentences_at(rows["valid"]),
        test=data.sentences_at(rows["test"]),
        factor_names=list(FACTOR_NAMES),
        factors={name: data.factors[r] for name, r in rows.items()},
        info={"seed": split_seed, "data_dir": str(data.folder), "factors_num_values": list(FACTORS_NUM_VALUES),
              "factor_values": FACTOR_VALUES, "num_rows": len(data)},
    )
