from types import SimpleNamespace

import pytest
import torch

from textvae import load_pretrained
from textvae.config import ConfigError, DialogueDataConfig
from textvae.data.pipeline import prepare_data
from textvae.evaluation.summary import print_dialogue_summary
from textvae.models import VHRED, BaseVAE
from textvae.models.hierarchical import append_response
from textvae.training.trainer import train

from .test_cvae import batch_of, dialogue_data, tiny_cvae_config, tiny_dialogue_run_config  # noqa: F401  (the module-scoped fixture)
from .test_dialogue_data import jsonl_config, write_jsonl_corpus


def build(data, **dialogue) -> VHRED:
    torch.manual_seed(0)
    config = tiny_cvae_config(**dialogue)
    config.model_type = "vhred"
    return BaseVAE.from_config(config, data.tokenizer)


def test_response_is_appended_after_the_last_context_turn(dialogue_data):
    batch = batch_of(dialogue_data, [0, 6])  # one and three context turns
    ids, lengths, floors, turns = append_response(batch)
    assert turns.tolist() == [2, 4]
    assert lengths[0].tolist()[:3] == [batch["context_lengths"][0, 0].item(), batch["response_lengths"][0].item(), 0]
    assert torch.equal(ids[1, 3, : batch["response_ids"].size(1)], batch["response_ids"][1])
    assert floors[0, 1] == 1 and floors[1, 3] == 1


def test_elbo_sums_turns_and_earlier_turns_ignore_later_ones(dialogue_data):
    model = build(dialogue_data).eval()
    batch = batch_of(dialogue_data, [2, 6])  # windows of 4 turns each
    torch.manual_seed(1)
    terms = model.turn_terms(batch)
    torch.manual_seed(1)
    out = model(batch)
    assert torch.allclose(out.rec, torch.zeros(2).index_add_(0, terms.row, terms.rec))
    assert torch.allclose(out.kl, torch.zeros(2).index_add_(0, terms.row, terms.kl_per_dim.sum(-1)))
    assert out.z.shape == (2, 4) and int(terms.last.sum()) == 2
    changed = dict(batch)  # a different response of the same length: turns before it must not notice
    changed["response_ids"] = batch["response_ids"].clone()
    changed["response_ids"][:, 1] = 5
    torch.manual_seed(1)
    other = model.turn_terms(changed)
    assert torch.allclose(other.rec[~terms.last], terms.rec[~terms.last], atol=1e-6)
    assert torch.allclose(other.kl_per_dim[~terms.last], terms.kl_per_dim[~terms.last], atol=1e-6)
    assert not torch.allclose(other.rec[terms.last], terms.rec[terms.last])



def test_context_only_turns_condition_but_leave_rec_and_kl(dialogue_data):
    model = build(dialogue_data).eval()
    batch = batch_of(dialogue_data, [2, 6])  # windows of 4 turns each
    full = model.turn_terms(batch)
    masked = dict(batch, context_only=torch.tensor([0, 2]))  # the second window's first 2 turns: modelled before
    terms = model.turn_terms(masked)
    assert terms.row.tolist() == [0, 0, 0, 0, 1, 1]
    kept = torch.tensor([True] * 4 + [False, False, True, True])
    # KL does not depend on the sample: the kept turns' KLs are unchanged (the masked turns still condition them)
    assert torch.allclose(terms.kl_per_dim, full.kl_per_dim[kept], atol=1e-6)
    out = model(masked)
    assert torch.allclose(out.kl[1], full.kl_per_dim[6:].sum(), atol=1e-6)
    assert out.z.shape == (2, 4) and terms.last.tolist() == [False, False, False, True, False, True]
    lengths = append_response(batch)[1]
    assert int(full.num_tokens - terms.num_tokens) == int((lengths[1, :2] - 1).sum())


def test_vhred_needs_a_context_condition(dialogue_data):
    with pytest.raises(ConfigError, match="vhred"):
        build(dialogue_data, use_act=True)


def test_trainer_trains_a_tiny_vhred_on_disjoint_windows(tmp_path):
    config = tiny_dialogue_run_config(
        tmp_path, "vhred", "data.batch_size=2", "data.dialogue.max_turns=2", "data.dialogue.windows=disjoint",
        "train.max_steps=3", "train.eval_every=3",
    )
    result = train(config, progress=False)
    # windows of 3 turns: 4 turns -> 2 (the last ends at turn 3 and models only it), 2 -> 1, 5 -> 2
    assert result.valid["sentences"] == 2 + 1 + 2
    model = load_pretrained(result.final_dir)
    assert isinstance(model, VHRED) and len(model.respond([["hello there ."]], num_samples=2, seed=0)[0]) == 2


def test_closing_summary_scores_every_response_not_the_training_windows(tmp_path, capsys):
    config = jsonl_config(write_jsonl_corpus(tmp_path / "d"), dialogue=DialogueDataConfig(max_turns=2, windows="disjoint"))
    data = prepare_data(config, max_length=16)
    assert len(data.datasets["test"]) == 5  # windows
    folder = build(data).save_pretrained(tmp_path / "best")
    state = SimpleNamespace(step=3, best_elbo=-30.0, best_step=3)
    valid = {"elbo": -30.0, "rec": 28.0, "kl": 2.0, "ppl_bound": 50.0}
    print_dialogue_summary(SimpleNamespace(best_dir=folder, final_dir=folder, valid=valid, state=state), data)
    out = capsys.readouterr().out
    assert "test, first 8 contexts" in out  # every response after a dialogue's first utterance, as a CVAE's
    references = [line.split("reference: ", 1)[1] for line in out.splitlines() if "reference: " in line]
    assert references == [t.response for t in data.response_pairs("test")[1][:3]]
    assert references == ["hi , how are you ?", "fine , thanks .", "good to hear ."]
