import numpy as np
import pytest

from textvae.config import DataConfig
from textvae.data.corpora import DataError, load_corpus
from textvae.data.dsentences import (
    FACTORS_NUM_VALUES,
    DSentences,
    find_dsentences_dir,
    load_dsentences_arrays,
    split_by_sentence,
)
from textvae.data.ground_truth import GroundTruthData, check_factors, sample, synthetic_ground_truth
from textvae.data.synthetic import GRAMMAR


def test_both_data_sets_implement_the_ground_truth_protocol():
    assert isinstance(synthetic_ground_truth(), GroundTruthData)
    assert synthetic_ground_truth() is GRAMMAR
    for attr in ("num_factors", "factors_num_values", "factor_names", "sample_factors", "sample_observations_from_factors"):
        assert hasattr(DSentences, attr), attr
    assert DSentences.num_factors == len(DSentences.factor_names) == len(DSentences.factors_num_values) == 9


def test_synthetic_ground_truth_round_trips_through_sentences():
    data = synthetic_ground_truth()
    rng = np.random.default_rng(0)
    factors, sentences = sample(data, 300, rng)
    assert factors.shape == (300, data.num_factors) and factors.dtype == np.int64
    assert np.all(factors < np.array(data.factors_num_values)) and np.all(factors >= 0)
    parsed = np.stack([data.parse(s) for s in sentences])
    assert np.array_equal(parsed, factors)
    # each factor is uniform: every value shows up
    many = data.sample_factors(5000, rng)
    for k, n in enumerate(data.factors_num_values):
        assert len(np.unique(many[:, k])) == n


def test_check_factors_names_the_bad_column():
    data = synthetic_ground_truth()
    bad = data.sample_factors(3, np.random.default_rng(0))
    bad[1, 2] = 99
    with pytest.raises(ValueError, match=r"factor 2 \(verb\)"):
        check_factors(data, bad)
    with pytest.raises(ValueError, match="shape"):
        check_factors(data, bad[:, :4])


def test_row_formula_matches_factors_md_and_inverts():
    # row = tuple*576 + obj_number*288 + sent_type*144 + gender*72 + subj_number*36 + person*12 + negation*6
    #       + aspect*3 + tense, with columns (tuple, obj_number, sent_type, gender, subj_number, person, negation,
    #       tense, aspect)
    f = np.array([[5, 1, 0, 1, 0, 2, 1, 2, 1]])
    assert DSentences.index_of(f)[0] == 5 * 576 + 288 + 72 + 2 * 12 + 6 + 3 + 2
    rows = np.random.default_rng(0).integers(0, int(np.prod(FACTORS_NUM_VALUES)), size=1000)
    assert np.array_equal(DSentences.index_of(DSentences.factors_of(rows)), rows)


def test_loader_reads_two_members_and_refuses_to_unpickle(tmp_path):
    sentences = np.array([b"i accepted the payment", b"i accept the payment"])
    factors = np.zeros((2, 9), dtype=np.int64)
    metadata = np.array({"latent_names": ["out", "of", "order"]}, dtype=object)
    np.savez(tmp_path / "ok.npz", sentences_array=sentences, latents_classes=factors, metadata=metadata)
    got_sentences, got_factors = load_dsentences_arrays(tmp_path / "ok.npz")  # the pickled member is never read
    assert got_sentences.tolist() == sentences.tolist() and np.array_equal(got_factors, factors)

    np.savez(tmp_path / "pickled.npz", sentences_array=np.array(["a b", "c d"], dtype=object), latents_classes=factors)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_dsentences_arrays(tmp_path / "pickled.npz")
    np.savez(tmp_path / "partial.npz", sentences_array=sentences)
    with pytest.raises(DataError, match="no member latents_classes"):
        load_dsentences_arrays(tmp_path / "partial.npz")
    with pytest.raises(DataError, match="not found"):
        find_dsentences_dir(tmp_path / "nowhere")


def test_split_keeps_each_sentence_string_in_one_split():
    sentences = np.array([b"a", b"b", b"a", b"c", b"d", b"b", b"e", b"f", b"g", b"h", b"a", b"i"])
    splits = split_by_sentence(sentences, seed=3, valid_fraction=0.2, test_fraction=0.2)
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(len(sentences)))
    strings = {name: set(sentences[rows].tolist()) for name, rows in splits.items()}
    assert not (strings["train"] & strings["valid"]) and not (strings["train"] & strings["test"])
    assert not (strings["valid"] & strings["test"])
    again = split_by_sentence(sentences, seed=3, valid_fraction=0.2, test_fraction=0.2)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)


# ---------------------------------------------------------------- on the real data, when it is there


@pytest.fixture(scope="module")
def dsentences():
    try:
        find_dsentences_dir()
    except DataError:
        pytest.skip("dSentences data not found (set TEXTVAE_DATA or place it in ../shared/data/dsentences)")
    return DSentences()


def test_dsentences_rows_factors_and_sentences_agree(dsentences):
    data = dsentences
    assert len(data) == 633_600 and data.factors.shape == (633_600, 9)
    assert isinstance(data, GroundTruthData)
    # the examples of FACTORS.md
    assert data.sentences_at([0])[0] == "i accepted the payment"
    first = np.zeros((1, 9), dtype=np.int64)
    variants = {0: (1, "i accepted the apology"), 1: (1, "i accepted the payments"), 7: (1, "i accept the payment"),
                5: (2, "he accepted the payment")}
    for column, (value, sentence) in variants.items():
        f = first.copy()
        f[0, column] = value
        assert data.sample_observations_from_factors(f, None) == [sentence], column
    # round trip: sampled factors -> rows -> stored factors
    rng = np.random.default_rng(0)
    factors, sentences = sample(data, 500, rng)
    rows = data.index_of(factors)
    assert np.array_equal(data.factors[rows], factors)
    assert sentences == data.sentences_at(rows)
    assert data.verb_object_pairs()[:2] == [("accept", "payment"), ("accept", "apology")]


def test_dsentences_corpus_is_registered_and_split_by_sentence(dsentences):
    corpus = load_corpus(DataConfig(corpus="dsentences"))
    sizes = [len(corpus.train), len(corpus.valid), len(corpus.test)]
    assert sum(sizes) == 633_600 and sizes[0] > 8 * sizes[1]
    assert not set(corpus.test) & set(corpus.train)
    assert corpus.factor_names == DSentences.factor_names
    for split in ("train", "test"):
        rows = dsentences.index_of(corpus.factors[split][:200])
        assert dsentences.sentences_at(rows) == corpus.split(split)[:200]


def test_the_gumbel_config_matches_the_factors():
    from pathlib import Path

    from textvae.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "dsentences_discrete.yaml")
    assert config.data.corpus == "dsentences" and config.model.latent.type == "gumbel"
    assert config.model.latent.category_sizes == FACTORS_NUM_VALUES


def test_benchmark_models_build_and_take_a_step(tokenizer):
    """Every model of scripts/benchmarks/dsentences.py builds from its config and trains one step (no data needed)."""
    import importlib.util
    from pathlib import Path

    import torch

    from textvae import TextVAE

    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmarks" / "dsentences.py"
    spec = importlib.util.spec_from_file_location("bench_dsentences", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from .conftest import SENTENCES

    for name in bench.MODELS:
        torch.manual_seed(0)
        model = TextVAE.from_config(bench.model_config(name, hidden=8, dataset_size=100), tokenizer)
        ids, lengths = model.tokenize(SENTENCES)
        out = model({"input_ids": ids, "lengths": lengths}, step=5)
        assert torch.isfinite(out.loss), name
        out.loss.backward()
