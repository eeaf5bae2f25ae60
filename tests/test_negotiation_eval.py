"""Negotiation evaluation: the game figures and diversity of hand-made games, and the perplexities under a model
whose every next-token distribution is uniform (so the perplexity is the vocabulary size)."""

import math

import pytest
import torch

from tests.test_latent_action import CONFIGS, data  # noqa: F401  (the tiny data fixture)
from textvae.evaluation.negotiation import (
    diversity, evaluate_against, game_metrics, language_perplexity, response_perplexity,
    selection_accuracy, utterance_batches,
)
from textvae.models import NegotiationAgent, build_model
from textvae.tasks.negotiation import GameResult, Goal

A = Goal((1, 4, 1), (0, 2, 2))
B = Goal((1, 4, 1), (4, 1, 2))


def games():
    agreed = GameResult(goals=(A, B), turns=[(0, "i want the hats"), (1, "ok deal"), (0, "<selection>")],
                        selections=((0, 4, 1), (1, 0, 0)), agreed=True, rewards=(10, 4), pareto=True)
    unfair = GameResult(goals=(A, B), turns=[(1, "give me everything"), (0, "i want the hats"), (1, "no"),
                                             (0, "the ball then")],
                        selections=((0, 0, 1), (1, 4, 0)), agreed=True, rewards=(2, 8), pareto=False)
    failed = GameResult(goals=(A, B), turns=[(0, "no"), (1, "<selection>")], selections=(None, (1, 4, 1)))
    return [agreed, unfair, failed]


def test_game_metrics_of_hand_made_games():
    m = game_metrics(games())
    assert m.games == 3 and m.reward == 4.0 and m.partner_reward == 4.0
    assert m.agreed_reward == 6.0 and m.agreed_partner_reward == 6.0
    assert m.agreement == pytest.approx(200 / 3) and m.pareto == pytest.approx(100 / 3) and m.turns == 3.0
    assert (m.utterances, m.unique_utterances, m.unique_words) == (4, 3, 7)  # "<selection>" left out
    partner = game_metrics(games(), agent=1)
    assert partner.reward == 4.0 and partner.agreed_reward == 6.0
    assert diversity(games(), agent=1) == {"utterances": 3, "unique_utterances": 3, "unique_words": 6}
    assert m.language_ppl is None


def uniform(model):
    """Every next-token distribution uniform over the vocabulary: perplexity = vocabulary size."""
    with torch.no_grad():
        model.decoder.output.weight.zero_()
        model.decoder.output.bias.zero_()
    return model


def test_perplexities_under_a_uniform_model(data):  # noqa: F811
    torch.manual_seed(0)
    model = uniform(build_model(CONFIGS["word"](), data.tokenizer))
    vocab = data.tokenizer.vocab_size
    batches = utterance_batches(model, games(), agent=0)
    assert sum(int(b["goal"].size(0)) for b in batches) == 5  # every turn agent 0 spoke, <selection> included
    assert language_perplexity(model, games(), agent=0) == pytest.approx(vocab, rel=1e-4)
    assert response_perplexity(model, data.datasets["test"]) == pytest.approx(vocab, rel=1e-4)
    assert math.isnan(language_perplexity(model, [GameResult(goals=(A, B))]))


def test_evaluate_against_plays_and_scores(data):  # noqa: F811
    torch.manual_seed(0)
    model = build_model(CONFIGS["word"](), data.tokenizer)
    metrics, results = evaluate_against(NegotiationAgent(model, seed=0), NegotiationAgent(model, seed=1),
                                        [(A, B), (B, A)], language_model=model, max_turns=2)
    assert metrics.games == len(results) == 2 and all(len(r.turns) <= 2 for r in results)
    assert metrics.language_ppl > 1 and metrics.utterances <= 2


def test_selection_accuracy_counts_exact_splits_of_the_selecting_rows(data, monkeypatch):  # noqa: F811
    """A head forced to predict each row's agreed split scores 1, one forced off by one book on the first selecting
    row of each batch scores 1 - (those rows) / (selecting rows); rows without an agreed split never count."""
    from textvae.data.pipeline import make_loader
    from textvae.models.negotiation import MAX_COUNT, NegotiationModel

    torch.manual_seed(0)
    model = build_model(CONFIGS["word"](), data.tokenizer)
    test = data.datasets["valid"]  # two agreed splits among five rows (the tiny test split has none)
    batches = list(make_loader(test, data.tokenizer, 128, shuffle=False))
    known = [(b["select"] > 0) & (b["items"] >= 0).all(-1) for b in batches]
    selecting = sum(int(k.sum()) for k in known)
    assert 0 < selecting < sum(int(b["select"].numel()) for b in batches)  # some rows do not count
    real_pieces = NegotiationModel.pieces
    state = {"wrong": False, "missed": 0}

    def forced(self, batch):
        pieces = real_pieces(self, batch)
        items = batch["items"].clamp(min=0)
        logits = torch.full_like(pieces.selection_logits, -5.0).scatter(-1, items.unsqueeze(-1), 5.0)
        if state["wrong"]:
            rows = ((batch["select"] > 0) & (batch["items"] >= 0).all(-1)).nonzero()
            if len(rows):
                row = int(rows[0])
                book = int(items[row, 0])
                logits[row, 0] = -5.0
                logits[row, 0, (book + 1) % (MAX_COUNT + 1)] = 5.0
                state["missed"] += 1
        pieces.selection_logits = logits
        return pieces

    monkeypatch.setattr(NegotiationModel, "pieces", forced)
    assert selection_accuracy(model, test) == 1.0
    state["wrong"] = True
    assert selection_accuracy(model, test) == pytest.approx(1 - state["missed"] / selecting)
    assert state["missed"] >= 1
    assert math.isnan(selection_accuracy(model, data.datasets["test"]))  # its one closing row has no agreed split


@pytest.mark.parametrize("name", ["word", "larl_cat"])
def test_validation_reports_the_selection_accuracy(data, name):  # noqa: F811
    """The trainer's validation figures include the selection head's accuracy over the selecting rows, the same as
    ``selection_accuracy`` gives on that split; models without such a figure add nothing."""
    from textvae.data.pipeline import make_loader
    from textvae.training.trainer import BASE_FIGURES, evaluate_loader

    torch.manual_seed(0)
    model = build_model(CONFIGS[name](), data.tokenizer)
    loader = make_loader(data.datasets["valid"], data.tokenizer, 2, shuffle=False)  # 5 rows: 3 batches
    figures = evaluate_loader(model, loader)
    assert figures["selection_accuracy"] == pytest.approx(selection_accuracy(model, data.datasets["valid"]))
    assert set(figures) == set(BASE_FIGURES) | {"selection", "selection_accuracy"}
    from textvae.models.negotiation import NegotiationModel

    real_pieces = NegotiationModel.pieces

    def right(self, batch):  # a head that predicts every agreed split
        pieces = real_pieces(self, batch)
        items = batch["items"].clamp(min=0).unsqueeze(-1)
        pieces.selection_logits = torch.full_like(pieces.selection_logits, -5.0).scatter(-1, items, 5.0)
        return pieces

    NegotiationModel.pieces = right
    try:
        assert evaluate_loader(model, loader)["selection_accuracy"] == 1.0
    finally:
        NegotiationModel.pieces = real_pieces


def test_validation_of_a_sentence_vae_adds_no_figure(tokenizer):
    from tests.conftest import SENTENCES, tiny_model_config
    from textvae import TextVAE
    from textvae.data.batching import collate
    from textvae.training.trainer import BASE_FIGURES, evaluate_loader

    model = TextVAE(tiny_model_config("gru"), tokenizer)
    ids = model.token_ids(list(SENTENCES))
    batch = collate(ids, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
    assert set(evaluate_loader(model, [batch])) == set(BASE_FIGURES)
