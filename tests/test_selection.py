"""Selection modules of negotiation agents: the attention module's independence from padding and from turns after
the closing one, exact counts however confident the head, and models saved before
the attention module existed loading with their MLP head."""

import json

import pytest
import torch

from tests.test_latent_action import CONFIGS, data, whole_batch  # noqa: F401  (the tiny data fixture)
from textvae.config import ConfigError
from textvae.models import build_model, load_pretrained
from textvae.models.negotiation import MAX_COUNT, NUM_ITEMS, NegotiationModel
from textvae.modules.selection import AttentionSelection, SelectionHead


def attention_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 20, (2, 4, 5), generator=g)
    lengths = torch.tensor([[5, 2, 3, 4], [1, 5, 0, 0]])
    floors = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0]])
    turns = torch.tensor([3, 2])
    states = torch.randn(2, 4, 7, generator=g)
    goal = torch.randn(2, 6, generator=g)
    return ids, lengths, floors, turns, states, goal


def test_attention_reads_each_rows_own_words_only():
    torch.manual_seed(0)
    module = AttentionSelection(state_size=7, goal_size=6, hidden_size=8, outputs=NUM_ITEMS * (MAX_COUNT + 1),
                                vocab_size=20, embedding_size=4, attention_size=5).eval()
    ids, lengths, floors, turns, states, goal = attention_inputs()
    both = module(ids, lengths, floors, turns, states, goal)
    # each row alone, cut to its own turns and words, gives what it gave beside a longer row
    for row, (n, width) in enumerate([(3, 5), (2, 5)]):
        alone = module(ids[row:row + 1, :n, :width], lengths[row:row + 1, :n], floors[row:row + 1, :n],
                       turns[row:row + 1], states[row:row + 1, :n], goal[row:row + 1])
        torch.testing.assert_close(alone, both[row:row + 1])
    # padding, a turn after the last one counted and the states of that turn change nothing
    changed = ids.clone()
    changed[0, 1, 2:] = 3  # past turn 1's length
    changed[0, 3] = 11  # turn 3 > turns
    later = states.clone()
    later[0, 3] = 100.0
    torch.testing.assert_close(module(changed, lengths, floors, turns, later, goal), both)
    # a word of the first turn does change the selection (the GRU reads the whole dialogue)
    changed = ids.clone()
    changed[0, 0, 0] = (int(ids[0, 0, 0]) % 19) + 1
    assert not torch.allclose(module(changed, lengths, floors, turns, states, goal)[0], both[0])


@pytest.mark.parametrize("name", ["word", "word_head", "larl_cat"])
def test_selection_counts_rows_however_confident_the_head(data, name, monkeypatch):  # noqa: F811
    """A head so sure of every agreed split that its cross-entropy is exactly 0 still counts those rows: accuracy
    1 over the two agreed splits, and the loss's selection term is the mean over them."""
    torch.manual_seed(0)
    model = build_model(CONFIGS[name](), data.tokenizer).eval()
    batch = whole_batch(data)
    real_pieces = NegotiationModel.pieces

    def sure(self, batch):
        pieces = real_pieces(self, batch)
        items = batch["items"].clamp(min=0).unsqueeze(-1)
        pieces.selection_logits = torch.full_like(pieces.selection_logits, -1e4).scatter(-1, items, 1e4)
        return pieces

    monkeypatch.setattr(NegotiationModel, "pieces", sure)
    out = model(batch)
    assert float(out.selection.sum()) == 0.0
    assert int(out.selection_rows.sum()) == 2 and out.selection_accuracy == 1.0
    assert {k: (float(a), float(b)) for k, (a, b) in out.figure_sums().items()} == {
        "selection": (0.0, 2.0), "selection_accuracy": (2.0, 2.0)}
    monkeypatch.setattr(NegotiationModel, "pieces", real_pieces)
    out = model(batch)
    respond = batch["respond"].float()
    expected = (out.rec * respond).sum() / respond.sum() + 0.5 * out.selection.sum() / 2
    if name == "larl_cat":
        expected = expected + 0.01 * out.kl.sum() / respond.sum()
    assert float(out.loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_selection_logits_are_read_only_on_selecting_rows(data):  # noqa: F811
    torch.manual_seed(0)
    model = build_model(CONFIGS["word"](), data.tokenizer).eval()
    batch = whole_batch(data)
    logits = model.pieces(batch).selection_logits
    selecting = batch["select"] > 0
    counts = batch["goal"][:, 0::2]
    allowed = torch.arange(MAX_COUNT + 1).view(1, 1, -1) <= counts.unsqueeze(-1)
    assert (logits[~selecting][allowed[~selecting]] == 0).all()  # no head ran on the other rows
    assert (logits[selecting][allowed[selecting]] != 0).all()
    top = logits[selecting].argmax(-1)
    assert (top <= counts[selecting]).all()  # classes above each count are masked


def test_a_model_saved_before_the_option_loads_with_its_mlp_head(data, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    model = build_model(CONFIGS["word_head"](), data.tokenizer).eval()
    assert isinstance(model.selection_head, SelectionHead)
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["negotiation"]["selection"]  # as written before model.negotiation.selection existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = load_pretrained(tmp_path / "m")
    assert isinstance(loaded.selection_head, SelectionHead)
    batch = whole_batch(data)
    torch.testing.assert_close(loaded.pieces(batch).selection_logits, model.pieces(batch).selection_logits)
    assert isinstance(build_model(CONFIGS["word"](), data.tokenizer).selection_head, AttentionSelection)


def test_an_unknown_selection_module_is_named():
    from textvae.config import load_config

    with pytest.raises(ConfigError) as error:
        load_config(None, ["model.model_type=negotiation_word", "model.latent.type=none",
                           "model.negotiation.selection=atention"])
    assert "model.negotiation.selection" in str(error.value) and "attention" in str(error.value)


def test_training_log_lines_carry_the_models_own_figures():
    """The log window sums each figure's numerator and denominator over the applied steps only, so a line's
    selection accuracy is exact splits over agreed-split rows of those steps, whatever each batch held."""
    from textvae.models.negotiation import NegotiationOutput
    from textvae.training.logs import LogWindow

    def output(ce, rows, right):
        n = len(rows)
        zero = torch.zeros(n)
        return NegotiationOutput(loss=torch.tensor(1.0), rec=zero, kl=zero, kl_per_dim=zero[:, None],
                                 kl_weight=0.0, capacity=None, num_tokens=torch.tensor(5), z=zero[:, None],
                                 z_mean=zero[:, None], selection=torch.tensor(ce), selection_rows=torch.tensor(rows),
                                 selection_right=torch.tensor(right))

    window = LogWindow()
    window.add(output([2.0, 0.0, 0.0], [True, False, False], [True, False, False]))
    window.commit(True)
    window.add(output([1.0, 3.0], [True, True], [False, True]))
    window.commit(True)
    window.add(output([9.0], [True], [False]))  # a skipped step: counted nowhere but in skipped_steps
    window.commit(False)
    means = window.means()
    assert means["selection"] == pytest.approx(6.0 / 3) and means["selection_accuracy"] == pytest.approx(2 / 3)
    assert means["skipped_steps"] == 1 and means["tokens"] == 15
    empty = LogWindow()
    empty.add(output([0.0], [False], [False]))
    empty.commit(True)
    assert "selection_accuracy" not in empty.means()  # no agreed split: no figure rather than 0 / 0


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_an_agent_refuses_a_temperature_that_is_not_positive(data, temperature):  # noqa: F811
    from textvae.models import NegotiationAgent
    from textvae.models.base import InputError

    model = build_model(CONFIGS["word"](), data.tokenizer)
    with pytest.raises(InputError, match="temperature must be positive"):
        NegotiationAgent(model, temperature=temperature)
    assert NegotiationAgent(model).temperature == 0.5  # Lewis et al.'s self-play temperature


def test_attention_with_no_word_reads_the_goal_alone():
    torch.manual_seed(0)
    module = AttentionSelection(state_size=7, goal_size=6, hidden_size=8, outputs=NUM_ITEMS * (MAX_COUNT + 1),
                                vocab_size=20, embedding_size=4, attention_size=5).eval()
    ids, lengths, floors, turns, states, goal = attention_inputs()
    none = module(ids, torch.zeros_like(lengths), floors, turns, states, goal)
    one_empty = module(ids, lengths * torch.tensor([[1], [0]]), floors, turns, states, goal)  # row 1 has no word
    torch.testing.assert_close(none[1], one_empty[1])  # the same pooled zeros, with or without other rows' words
    assert torch.isfinite(none).all() and not torch.allclose(none[0], none[1])  # the goals differ
