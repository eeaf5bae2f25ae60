import itertools

import pytest
import torch

from textvae import InputError, TextVAE
from textvae.data.batching import collate
from textvae.models.base import repetition_controls, sample_tokens

from .conftest import SENTENCES, tiny_model_config



def model_of(tokenizer, rnn="lstm", z_mode="init+concat", seed=0):
    torch.manual_seed(seed)
    model = TextVAE.from_config(tiny_model_config(rnn, decoder={"z_mode": z_mode}), tokenizer).eval()
    with torch.no_grad():  # sharper, z-dependent distributions, so decoding choices matter
        model.decoder.output.weight.mul_(4)
    return model


def latents(n=12, seed=1):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed)) * 2


def log_prob(model, rows, z):
    """log p(tokens + <eos> | z) of each row under teacher forcing."""
    tok = model.tokenizer
    batch = collate(rows, tok.pad_id, tok.bos_id, tok.eos_id)
    with torch.no_grad():
        return -model.reconstruction_nll(batch["input_ids"], batch["lengths"], z)


@pytest.mark.parametrize("rnn,z_mode", [("lstm", "init+concat"), ("gru", "init"), ("lstm", "concat")])
def test_incremental_decoding_equals_rerunning_the_decoder_on_the_growing_prefix(tokenizer, rnn, z_mode):
    model = model_of(tokenizer, rnn, z_mode)
    z = latents(6)
    fast = model.generate(z, max_length=9)
    tok = model.tokenizer
    for row, zi in zip(fast, z):
        prefix = [tok.bos_id]
        with torch.no_grad():
            for _ in range(9):
                logits = model.decoder.project(model.decoder(torch.tensor([prefix]), zi[None]))[0, -1]
                logits[[tok.pad_id, tok.bos_id]] = -torch.inf
                prefix.append(int(logits.argmax()))
                if prefix[-1] == tok.eos_id:
                    break
        expected = prefix[1:-1] if prefix[-1] == tok.eos_id else prefix[1:]
        assert row == expected


def test_rows_decode_the_same_alone_as_in_a_batch(tokenizer):
    model = model_of(tokenizer)
    z = latents(7)
    for strategy in ("greedy", "beam"):
        batched = model.generate(z, strategy=strategy, max_length=8)
        assert batched == [model.generate(z[i : i + 1], strategy=strategy, max_length=8)[0] for i in range(7)]


def test_beam_width_one_without_length_penalty_is_greedy(tokenizer):
    model = model_of(tokenizer)
    with torch.no_grad():  # a likelier <eos>, so some rows stop early and others reach max_length
        model.decoder.output.bias[model.tokenizer.eos_id] += 1.0
    z = latents(20)
    greedy = model.generate(z, max_length=10)
    assert model.generate(z, strategy="beam", beam_size=1, length_penalty=0.0, max_length=10) == greedy
    lengths = [len(row) for row in greedy]
    # the comparison covers rows that stopped at <eos> and rows cut at max_length, and no row runs past it
    assert max(lengths) == 10 and min(lengths) < 10, lengths


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_a_beam_as_wide_as_the_vocabulary_finds_the_exact_best_short_sentence(tokenizer, length_penalty):
    """With max_length 2 and beam_size >= vocabulary, beam search is exhaustive: it must return the sequence with
    the best (length-normalised) log-probability among all sentences of at most two tokens."""
    model = model_of(tokenizer)
    tok = model.tokenizer
    words = [i for i in range(tok.vocab_size) if i not in (tok.pad_id, tok.bos_id, tok.eos_id)]
    candidates = [[]] + [[w] for w in words] + [list(p) for p in itertools.product(words, repeat=2)]
    z = latents(3)
    found = model.generate(z, strategy="beam", beam_size=tok.vocab_size, max_length=2, length_penalty=length_penalty)
    for i in range(3):
        scores = log_prob(model, candidates, z[i : i + 1].expand(len(candidates), -1))
        scores = scores / torch.tensor([len(c) + 1.0 for c in candidates]) ** length_penalty
        assert found[i] == candidates[int(scores.argmax())]


def test_beam_search_scores_at_least_as_well_as_greedy_here(tokenizer):
    model = model_of(tokenizer)
    z = latents(16)
    greedy = model.generate(z, max_length=12)
    beam = model.generate(z, strategy="beam", beam_size=5, length_penalty=0.0, max_length=12)
    assert torch.all(log_prob(model, beam, z) >= log_prob(model, greedy, z) - 1e-5)
    assert beam != greedy  # the test model is sharp enough for search to matter


def test_top_k_one_and_a_tiny_nucleus_sample_the_greedy_tokens(tokenizer):
    model = model_of(tokenizer)
    z = latents(10)
    greedy = model.generate(z, max_length=10)
    gen = torch.Generator().manual_seed(0)
    assert model.generate(z, "sample", temperature=3.0, top_k=1, max_length=10, generator=gen) == greedy
    assert model.generate(z, "sample", top_p=1e-6, max_length=10, generator=gen) == greedy


def test_sampled_tokens_follow_the_filtered_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -torch.inf]]).expand(40000, -1)
    gen = torch.Generator().manual_seed(0)

    def frequencies(**kwargs):
        tokens = sample_tokens(logits, generator=gen, **kwargs)
        return torch.bincount(tokens, minlength=5).float() / tokens.numel()

    def expected(logit_row):
        return torch.softmax(torch.tensor(logit_row), -1)

    assert torch.allclose(frequencies(), expected([2.0, 1.0, 0.0, -1.0, -torch.inf]), atol=0.01)
    assert torch.allclose(frequencies(temperature=2.0), expected([1.0, 0.5, 0.0, -0.5, -torch.inf]), atol=0.01)
    assert torch.allclose(frequencies(top_k=2), expected([2.0, 1.0, -torch.inf, -torch.inf, -torch.inf]), atol=0.01)
    # probabilities 0.644, 0.237, 0.087, 0.032: a nucleus of 0.85 needs the first two, of 0.9 the first three
    assert torch.allclose(frequencies(top_p=0.85), expected([2.0, 1.0, -torch.inf, -torch.inf, -torch.inf]), atol=0.01)
    assert frequencies(top_p=0.9)[3:].sum() == 0 and frequencies(top_p=0.9)[2] > 0.05


def test_sampling_is_reproducible_with_a_generator_and_stops_at_max_length(tokenizer):
    model = model_of(tokenizer)
    z = latents(8)

    def draw(seed):
        return model.generate(z, "sample", temperature=1.5, max_length=5, generator=torch.Generator().manual_seed(seed))

    assert draw(3) == draw(3) and draw(3) != draw(4)
    assert all(len(row) <= 5 for row in draw(5))
    tok = model.tokenizer
    assert all(t not in (tok.pad_id, tok.bos_id, tok.eos_id) for row in draw(6) for t in row)


def test_the_public_api_takes_the_decoding_options(tokenizer):
    model = model_of(tokenizer)
    assert len(model.reconstruct(SENTENCES[:3], strategy="beam", beam_size=3)) == 3
    assert model.sample(4, strategy="sample", top_p=0.9, seed=0) == model.sample(4, strategy="sample", top_p=0.9, seed=0)
    assert len(model.interpolate(SENTENCES[0], SENTENCES[1], steps=3, method="spherical", strategy="beam")) == 3
    model.train()
    model.decode(latents(2))
    assert model.training  # the mode is restored


def test_bad_decoding_options_fail_clearly(tokenizer):
    model = model_of(tokenizer)
    z = latents(2)
    with pytest.raises(InputError, match="unknown decoding strategy 'nucleus'"):
        model.generate(z, "nucleus")
    with pytest.raises(InputError, match="top_k and top_p apply to strategy='sample'"):
        model.generate(z, "greedy", top_k=5)
    with pytest.raises(InputError, match="top_p must be in"):
        model.generate(z, "sample", top_p=0.0)
    with pytest.raises(InputError, match="beam_size"):
        model.generate(z, "beam", beam_size=0)


# ---------------------------------------------------------------- repetition controls


def constant_logits_model(tokenizer, preferences: dict):
    """A model whose next-token logits are the same at every step and for every z: -10, except the words in
    ``preferences`` (word -> logit) and <eos> (key None). Greedy decoding then repeats its favourite word."""
    model = model_of(tokenizer)
    tok = model.tokenizer
    with torch.no_grad():
        model.decoder.output.weight.zero_()
        model.decoder.output.bias.fill_(-10.0)
        for word, logit in preferences.items():
            model.decoder.output.bias[tok.eos_id if word is None else tok.encode(word)[0]] = logit
    return model


def test_the_repetition_controls_stop_a_greedy_loop(tokenizer):
    model = constant_logits_model(tokenizer, {"cat": 3.0, "dog": 2.5, "bird": 2.0, None: 1.8})
    z = latents(3)

    def words(**kwargs):
        return model.tokenizer.batch_decode(model.generate(z, max_length=8, **kwargs))

    assert words() == ["cat cat cat cat cat cat cat cat"] * 3
    # penalty 2: cat 3 -> 1.5 after its first use, so dog (2.5), then bird (2 > 1.5), then <eos> (1.8 > 1.5, 1.25, 1)
    assert words(repetition_penalty=2.0) == ["cat dog bird"] * 3
    assert words(no_repeat_ngram_size=1) == ["cat dog bird"] * 3  # no word twice; then only <eos> is left above -10
    # bigrams: "cat cat" may not recur, so after "cat cat" comes dog; after "cat cat dog cat" both "cat cat" and
    # "cat dog" are taken, so bird; after "... bird cat" every bigram from cat is taken, so <eos>
    assert words(no_repeat_ngram_size=2) == ["cat cat dog cat bird cat"] * 3
    for kwargs in ({"repetition_penalty": 2.0}, {"no_repeat_ngram_size": 2}):
        expected = words(**kwargs)
        assert model.tokenizer.batch_decode(model.generate(z, "beam", beam_size=1, length_penalty=0.0, max_length=8,
                                                           **kwargs)) == expected
        sampled = model.generate(z, "sample", top_k=1, max_length=8, generator=torch.Generator().manual_seed(0),
                                 **kwargs)
        assert model.tokenizer.batch_decode(sampled) == expected


def repeated_ngrams(row, n):
    grams = [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]
    return len(grams) - len(set(grams))


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_no_row_repeats_an_ngram_and_rows_are_independent(tokenizer, strategy):
    model = model_of(tokenizer)
    with torch.no_grad():  # favour one word everywhere, so loops are common without the control
        model.decoder.output.bias[model.tokenizer.encode("the")[0]] += 3.0
    z = latents(12)
    extra = {"generator": torch.Generator().manual_seed(0), "temperature": 0.7} if strategy == "sample" else {}
    plain = model.generate(z, strategy, max_length=14, **extra)
    assert sum(repeated_ngrams(row, 2) for row in plain) > 0
    for n in (1, 2, 3):
        extra = {"generator": torch.Generator().manual_seed(0), "temperature": 0.7} if strategy == "sample" else {}
        rows = model.generate(z, strategy, max_length=14, no_repeat_ngram_size=n, **extra)
        assert all(repeated_ngrams(row, n) == 0 for row in rows)
    if strategy != "sample":  # a row's history is its own: alone it decodes as in the batch
        for kwargs in ({"no_repeat_ngram_size": 2}, {"repetition_penalty": 1.8}):
            batched = model.generate(z, strategy, max_length=14, **kwargs)
            assert batched == [model.generate(z[i : i + 1], strategy, max_length=14, **kwargs)[0] for i in range(12)]
            assert batched != plain


@pytest.mark.parametrize("penalty,size", [(1.0, 1), (1.0, 2), (1.0, 3), (1.3, 0), (2.5, 0), (1.5, 2)])
def test_repetition_controls_equal_hugging_face_logits_processors(penalty, size):
    from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    gen = torch.Generator().manual_seed(size * 10 + int(penalty * 10))
    for length in range(0, 9):
        history = torch.randint(0, 5, (16, length), generator=gen)  # a small alphabet, so n-grams recur
        logits = torch.randn(16, 9, generator=gen) * 3  # negative and positive logits
        logits[0, 3] = -torch.inf
        expected = logits.clone()
        if penalty != 1.0:
            expected = RepetitionPenaltyLogitsProcessor(penalty)(history, expected)
        if size:
            expected = NoRepeatNGramLogitsProcessor(size)(history, expected)
        got = repetition_controls(logits, history, penalty, size)
        assert torch.equal(got, expected)
        if length and penalty != 1.0:
            assert not torch.equal(got, logits)  # the inputs exercise the control


def test_the_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens_once():
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0], [2.0, -1.0, 0.5, -3.0]])
    history = torch.tensor([[0, 1, 1], [2, 2, 2]])
    expected = torch.tensor([[1.0, -2.0, 0.5, -3.0], [2.0, -1.0, 0.25, -3.0]])
    assert torch.equal(repetition_controls(logits, history, 2.0), expected)


def test_bad_repetition_controls_name_the_argument(tokenizer):
    model = model_of(tokenizer)
    z = latents(2)
    for bad in (0.5, 0.0, -1.0, float("nan"), float("inf"), "2"):
        with pytest.raises(InputError, match="repetition_penalty must be"):
            model.generate(z, repetition_penalty=bad)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(InputError, match="no_repeat_ngram_size must be"):
            model.generate(z, "beam", no_repeat_ngram_size=bad)
