"""Negotiation agents (negotiation_word, larl): shapes, the KL's sign, the loss falling on a tiny set, save/load,
and playing the game through ``tasks.negotiation.play``."""

import pytest
import torch

from tests.conftest import fit, tiny_model_config
from tests.test_dealornodeal import write_folder
from textvae.config import DataConfig, DialogueDataConfig, TokenizerConfig
from textvae.data.pipeline import make_loader, prepare_data
from textvae.models import BaseVAE, LatentActionModel, NegotiationAgent, NegotiationWordModel, build_model
from textvae.models.latent_action import categorical_kl
from textvae.tasks.negotiation import Goal, play


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    config = DataConfig(corpus="dealornodeal", data_dir=str(write_folder(tmp_path_factory.mktemp("dnd") / "d")),
                        tokenizer=TokenizerConfig(pretokenize=False), dialogue=DialogueDataConfig(max_turns=20))
    return prepare_data(config, max_length=12)


def agent_config(model_type, **latent):
    latent = latent or {"type": "none"}
    return tiny_model_config("gru", model_type=model_type, latent=latent,
                             dialogue={"context_hidden_size": 10},
                             negotiation={"goal_embedding_size": 3, "goal_size": 6, "selection_hidden_size": 8},
                             objective={"beta": 0.01}, max_length=12)


CONFIGS = {
    "word": lambda: agent_config("negotiation_word"),
    "word_head": lambda: tiny_model_config(  # the MLP selection head instead of the default attention module
        "gru", model_type="negotiation_word", latent={"type": "none"}, dialogue={"context_hidden_size": 10},
        negotiation={"goal_size": 6, "selection": "head", "selection_hidden_size": 8}, max_length=12),
    "larl_cat": lambda: agent_config("larl", type="gumbel", category_sizes=[5, 5, 5], temperature=1.0,
                                     temperature_min=1.0, temperature_anneal_rate=0.0),
    "larl_gauss": lambda: agent_config("larl", type="gaussian", size=6),
    "larl_full": lambda: tiny_model_config(
        "gru", model_type="larl", latent={"type": "gumbel", "category_sizes": [4, 4]}, dialogue={"context_hidden_size": 10},
        negotiation={"goal_size": 6, "elbo": "full"}, max_length=12),
}


def whole_batch(data, split="train"):
    return next(iter(make_loader(data.datasets[split], data.tokenizer, 64, shuffle=False, bucket=False)))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_forward_shapes_and_loss_falls(data, name):
    torch.manual_seed(0)
    model = build_model(CONFIGS[name](), data.tokenizer)
    batch = whole_batch(data)
    out = model(batch)
    b = batch["goal"].size(0)
    assert out.rec.shape == (b,) and out.kl.shape == (b,) and out.selection.shape == (b,)
    assert (out.rec[batch["respond"] == 0] == 0).all() and (out.rec[batch["respond"] == 1] > 0).all()
    assert int(out.num_tokens) == int(((batch["response_lengths"] - 1) * batch["respond"]).sum())
    assert (out.selection > 0).sum() == 2  # two agreed splits among the training sides' closing examples
    losses = fit(model, batch, 30, 0.02)
    assert losses[-1] < 0.6 * losses[0]


def test_lite_kl_is_added_and_nonnegative(data):
    torch.manual_seed(0)
    model = build_model(CONFIGS["larl_cat"](), data.tokenizer)
    batch = whole_batch(data)
    model.eval()
    with torch.no_grad():
        out = model(batch, step=0)
    assert (out.kl >= 0).all() and float(out.kl.max()) <= 3 * torch.log(torch.tensor(5.0)) + 1e-5
    respond = batch["respond"].float()
    rec = out.rec.sum() / respond.sum()
    kl = out.kl.sum() / respond.sum()
    selection = out.selection.sum() / (out.selection > 0).sum()
    assert float(out.loss) == pytest.approx(float(rec + 0.01 * kl + 0.5 * selection), rel=1e-5)


def test_categorical_kl_matches_torch():
    q = torch.distributions.Categorical(logits=torch.randn(4, 3))
    p = torch.distributions.Categorical(logits=torch.randn(4, 3))
    from textvae.modules.latents import CategoricalPosterior
    ours = categorical_kl(CategoricalPosterior(q.logits, [3]), CategoricalPosterior(p.logits, [3]))
    assert torch.allclose(ours[:, 0], torch.distributions.kl_divergence(q, p), atol=1e-6)


def test_policy_log_prob_sums_over_variables(data):
    model = build_model(CONFIGS["larl_cat"](), data.tokenizer).eval()
    c = torch.randn(2, model.condition_size)
    z, p = model.act(c, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2, 15) and (z.sum(-1) == 3).all()
    by_hand = sum(torch.log_softmax(block, -1)[torch.arange(2), zb.argmax(-1)]
                  for block, zb in zip(p.logits.split(5, -1), z.split(5, -1)))
    assert torch.allclose(model.log_prob(p, z), by_hand)


@pytest.mark.parametrize("name", ["word", "larl_cat"])
def test_save_load_round_trip(data, name, tmp_path):
    model = build_model(CONFIGS[name](), data.tokenizer).eval()
    model.save_pretrained(tmp_path / "m")
    again = BaseVAE.from_pretrained(tmp_path / "m")
    assert type(again) is type(model)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    batch = whole_batch(data, "valid")
    assert torch.equal(model.evaluate(batch).selection, again.evaluate(batch).selection)


def test_models_play_a_batch_of_games(data):
    torch.manual_seed(0)
    word = build_model(CONFIGS["word"](), data.tokenizer)
    larl = build_model(CONFIGS["larl_cat"](), data.tokenizer)
    assert isinstance(word, NegotiationWordModel) and isinstance(larl, LatentActionModel)
    pairs = [(Goal((1, 4, 1), (0, 2, 2)), Goal((1, 4, 1), (4, 1, 2))), (Goal((3, 3, 1), (3, 0, 1)), Goal((3, 3, 1), (2, 1, 1)))]
    games = play([NegotiationAgent(larl, seed=0), NegotiationAgent(word, seed=1)], pairs * 2, max_turns=4, seed=0)
    assert all(1 <= len(g.turns) <= 4 for g in games)
    assert all(s is None or (len(s) == 3 and all(0 <= n <= c for n, c in zip(s, g.goals[0].counts)))
               for g in games for s in g.selections)
