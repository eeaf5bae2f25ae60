"""The closing summary of a training run (``evaluation.summary.print_summary``)."""

from types import SimpleNamespace

import torch

from textvae import TextVAE
from textvae.evaluation.summary import print_summary

from .conftest import SENTENCES, tiny_model_config


class Data:
    def sentences(self, split):
        return SENTENCES


def summary_of(tmp_path, tokenizer, capsys, objective, valid):
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(objective=objective), tokenizer)
    folder = model.save_pretrained(tmp_path / "best")
    state = SimpleNamespace(step=100, best_elbo=-30.0, best_step=100)
    result = SimpleNamespace(best_dir=folder, final_dir=folder, valid=valid, state=state)
    print_summary(result, Data())
    return model, capsys.readouterr().out


def test_summary_shows_greedy_and_sampled_decodes_of_the_same_prior_draws(tmp_path, tokenizer, capsys):
    valid = {"elbo": -30.0, "rec": 28.0, "kl": 2.0, "ppl_bound": 50.0, "active_units": 3}
    model, out = summary_of(tmp_path, tokenizer, capsys, {}, valid)
    lines = out.splitlines()
    greedy = [line.split("greedy:  ", 1)[1] for line in lines if line.startswith("  greedy:  ")]
    sampled = [line.split("sampled: ", 1)[1] for line in lines if line.startswith("  sampled: ")]
    assert greedy == model.sample(3, seed=0)
    assert sampled == model.sample(3, seed=0, strategy="sample", top_p=0.9)
    assert "active units 3/4" in out and "warning" not in out


def test_summary_warns_when_free_bits_hold_up_the_kl_of_an_unused_code(tmp_path, tokenizer, capsys):
    valid = {"elbo": -40.0, "rec": 28.0, "kl": 2.1, "ppl_bound": 50.0, "active_units": 0}
    _, out = summary_of(tmp_path, tokenizer, capsys, {"free_bits": 0.5}, valid)
    assert "warning: KL 2.1 is the free-bits floor (0.5 nats x 4 dimensions = 2.0), not information: 0/4 active " \
           "units; the encoder carries almost no information" in out
