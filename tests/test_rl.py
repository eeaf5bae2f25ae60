"""REINFORCE on the latent policy and on the words: reward rises on a toy game, latent RL moves only the policy, word
RL's log-probabilities are the sampled words', and a resumed run (word RL with its supervised updates too) equals an
uninterrupted one."""

import copy
from dataclasses import replace
import json

import pytest
import torch

from tests.test_latent_action import CONFIGS, data  # noqa: F401  (the tiny data fixture)
from textvae.errors import CheckpointError
from textvae.models import build_model
from textvae.tasks.negotiation import Goal
from textvae.training.rl import (
    PolicyAgent, RewardStats, RLConfig, WordPolicyAgent, learner, reinforce_loss, train_rl,
)
from textvae.training.state_files import save_state_file

PAIRS = [(Goal((1, 4, 1), (0, 2, 2)), Goal((1, 4, 1), (4, 1, 2))), (Goal((3, 3, 1), (3, 0, 1)), Goal((3, 3, 1), (2, 1, 1)))]


class Pushover:
    """Closes at once; gives the learner everything if the learner's utterance starts with ``word``, else no deal."""

    def __init__(self, word):
        self.word = word

    def respond(self, games, goals, histories):
        return ["<selection>"] * len(games)

    def select(self, games, goals, histories):
        return [(0, 0, 0) if any(not own and text.split()[:1] == [self.word] for own, text in h) else None
                for h in histories]


def take_all(games, goals, histories):
    return [g.counts for g in goals]


def first_words(model, n=200):
    agent = learner(model, torch.Generator().manual_seed(1), RLConfig())
    with torch.no_grad():
        said = agent.respond(list(range(n)), [PAIRS[0][0]] * n, [[]] * n)
    return [s.split()[0] if s.split() else "" for s in said]


def test_reward_standardisation_uses_earlier_rewards():
    stats = RewardStats()
    assert stats.standardise(5.0) == 5.0  # nothing seen yet: mean 0, std 1
    for r in (0.0, 10.0):
        stats.add(r)
    assert stats.mean == 5.0 and abs(stats.standardise(10.0) - 5.0 / 50 ** 0.5) < 1e-9


def test_reinforce_loss_discounts_earlier_turns():
    agent = PolicyAgent.__new__(PolicyAgent)
    lp = [torch.tensor(-1.0, requires_grad=True), torch.tensor(-2.0, requires_grad=True)]
    agent.log_probs = {0: lp}
    loss = reinforce_loss(agent, [3.0], RewardStats(), discount=0.5)
    assert float(loss.detach()) == -(0.5 * 3.0 * -1.0 + 1.0 * 3.0 * -2.0)


def train_on_toy_game(model, **settings):
    """RL against a partner who gives in to one of the words the untrained agent sometimes opens with (about 30%
    of its openings); returns that word's share of openings before and after."""
    words = first_words(model)
    word = min(set(words), key=lambda w: abs(words.count(w) / len(words) - 0.3))
    before = words.count(word) / len(words)
    config = RLConfig(episodes_per_update=16, max_turns=2, passes=1000, learning_rate=0.5, **settings)
    train_rl(model, Pushover(word), PAIRS, config, max_updates=15, select=take_all)
    return before, first_words(model).count(word) / 200


def test_rl_raises_reward_on_a_toy_game_and_moves_only_the_policy(data):  # noqa: F811
    torch.manual_seed(0)
    model = build_model(CONFIGS["larl_cat"](), data.tokenizer)
    decoder = copy.deepcopy(model.decoder.state_dict())
    before, after = train_on_toy_game(model)
    assert after > before + 0.2, (before, after)
    assert all(torch.equal(v, model.decoder.state_dict()[k]) for k, v in decoder.items())


def test_word_rl_raises_reward_on_a_toy_game(data):  # noqa: F811
    torch.manual_seed(0)
    before, after = train_on_toy_game(build_model(CONFIGS["word"](), data.tokenizer), supervised_every=0)
    assert after > before + 0.2, (before, after)


def test_word_log_probs_are_the_sampled_words(data):  # noqa: F811
    torch.manual_seed(0)
    model = build_model(CONFIGS["word"](), data.tokenizer).eval()
    agent = WordPolicyAgent(model, torch.Generator().manual_seed(3), temperature=0.7)
    goals = [PAIRS[0][0], PAIRS[1][0]]
    said = agent.respond([0, 1], goals, [[], [(False, "i want the hats")]])
    c = model.pieces(model.game_batch(goals, [[], [(False, "i want the hats")]], closing=False)).c
    for g, text in enumerate(said):
        ids = model.tokenizer.encode(text)
        lp = agent.log_probs[g][0]
        assert lp.requires_grad and lp.numel() == min(len(ids) + 1, model.config.max_length)
        # the first word's log-probability by hand: softmax of the decoder's first step at temperature 0.7
        logits, _ = model.decoder.step(torch.tensor([model.tokenizer.bos_id]), c[g:g + 1],
                                       model.decoder.initial_state(c[g:g + 1]))
        logits = logits.float() / 0.7
        logits[:, model._never_generated()] = -torch.inf
        first = ids[0] if ids else model.tokenizer.eos_id
        assert torch.allclose(lp[0], logits.log_softmax(-1)[0, first], atol=1e-5)


def resume_case(data, name, config, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    start = build_model(CONFIGS[name](), data.tokenizer)
    word = first_words(start)[0]
    train = data.datasets["train"]
    straight = copy.deepcopy(start)
    s1 = train_rl(straight, Pushover(word), PAIRS, config, max_updates=6, select=take_all, supervised_data=train)
    resumed = copy.deepcopy(start)
    path = tmp_path / "rl_state.safetensors"
    train_rl(resumed, Pushover(word), PAIRS, config, state_path=path, max_updates=3, select=take_all,
             supervised_data=train)
    fresh = copy.deepcopy(start)  # a new process: the weights come from the state file
    s2 = train_rl(fresh, Pushover(word), PAIRS, config, state_path=path, resume=True, max_updates=6, select=take_all,
                  supervised_data=train)
    return start, straight, fresh, s1, s2


def test_resumed_rl_equals_uninterrupted(data, tmp_path):  # noqa: F811
    config = RLConfig(episodes_per_update=4, max_turns=2, passes=100)
    _, straight, fresh, s1, s2 = resume_case(data, "larl_cat", config, tmp_path)
    assert s1.history == s2.history and s1.episode == s2.episode == 24
    assert (s1.rewards.count, s1.rewards.mean) == (s2.rewards.count, s2.rewards.mean)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()))


def test_resumed_word_rl_with_supervised_updates_equals_uninterrupted(data, tmp_path):  # noqa: F811
    config = RLConfig(episodes_per_update=4, max_turns=2, passes=100, supervised_every=2, supervised_batch_size=4)
    start, straight, fresh, s1, s2 = resume_case(data, "word", config, tmp_path)
    assert s1.history == s2.history and s1.episode == s2.episode == 24
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()))
    moved = straight.state_dict()
    assert not torch.equal(moved["selection_head.net.0.weight"], start.state_dict()["selection_head.net.0.weight"])  # supervised


def test_resumed_rl_trains_with_the_settings_given_now(data, tmp_path, monkeypatch):  # noqa: F811
    import textvae.training.rl as rl

    made = []
    real = rl.sgd
    monkeypatch.setattr(rl, "sgd", lambda *args: made.append(real(*args)) or made[-1])
    model = build_model(CONFIGS["word"](), data.tokenizer)
    path = tmp_path / "rl_state.safetensors"
    common = dict(state_path=path, select=take_all, supervised_data=data.datasets["train"])
    config = RLConfig(episodes_per_update=4, max_turns=2, supervised_every=1, supervised_batch_size=4)
    train_rl(model, Pushover(first_words(model)[0]), PAIRS, config, max_updates=2, **common)
    changed = replace(config, learning_rate=0.05, momentum=0.3, nesterov=False, supervised_learning_rate=0.2)
    made.clear()
    train_rl(model, Pushover(first_words(model)[0]), PAIRS, changed, resume=True, max_updates=2, **common)
    policy, supervised = made  # the RL optimizer, then the supervised updates'
    assert [(g["lr"], g["momentum"], g["nesterov"]) for g in policy.param_groups] == [(0.05, 0.3, False)]
    assert [(g["lr"], g["momentum"]) for g in supervised.param_groups] == [(0.2, 0.3)]
    assert len(policy.state) > 0  # the momentum buffers of the first two updates came back (no update ran since)


def test_an_old_pickled_rl_state_is_refused_not_ignored(data, tmp_path):  # noqa: F811
    model = build_model(CONFIGS["larl_cat"](), data.tokenizer)
    torch.save({"episode": 5}, tmp_path / "rl_state.pt")  # what versions before safetensors-only state files wrote
    with pytest.raises(CheckpointError, match=r"rl_state.pt: it is the pickle file .* never unpickles"):
        train_rl(model, Pushover(first_words(model)[0]), PAIRS, RLConfig(episodes_per_update=4, max_turns=2),
                 state_path=tmp_path / "rl_state.safetensors", resume=True, max_updates=1, select=take_all)
    save_state_file(tmp_path / "rl_state.safetensors", {"model": {}, "optimizer": [1]})  # readable, wrong layout
    with pytest.raises(CheckpointError, match=r"cannot resume reinforcement learning from .*rl_state.safetensors"):
        train_rl(model, Pushover(first_words(model)[0]), PAIRS, RLConfig(episodes_per_update=4, max_turns=2),
                 state_path=tmp_path / "rl_state.safetensors", resume=True, max_updates=1, select=take_all)


def test_rl_stage_script_runs_and_resumes(data, tmp_path):  # noqa: F811
    from tests.test_dealornodeal import write_folder
    from textvae.cli.rl import _run, build_parser, rl_main

    def _run_rl(argv):  # the script's run without its error printing, so that the test sees the exception
        return _run(build_parser().parse_args(argv))

    folder = write_folder(tmp_path / "dnd")
    torch.manual_seed(0)
    build_model(CONFIGS["word"](), data.tokenizer).save_pretrained(tmp_path / "word")
    build_model(CONFIGS["larl_cat"](), data.tokenizer).save_pretrained(tmp_path / "larl")
    common = ["--data-dir", str(folder), "--no-progress", "--episodes-per-update", "2", "--max-turns", "2",
              "--supervised-batch-size", "2", "--save-every", "1"]
    assert rl_main(["--model", str(tmp_path / "word"), "--output-dir", str(tmp_path / "w"), "--episodes", "2"] + common) == 0
    assert rl_main(["--model", str(tmp_path / "word"), "--output-dir", str(tmp_path / "w"), "--episodes", "4",
                    "--resume"] + common) == 0
    history = json.loads((tmp_path / "w" / "history.json").read_text())
    assert history["episode"] == 4 and len(history["history"]) == 2 and history["settings"]["kind"] == "word"
    # a resume must play the same games against the same partner: another partner or seed is refused, by name
    build_model(CONFIGS["word"](), data.tokenizer).save_pretrained(tmp_path / "other_word")
    for changed, named in ((["--partner", str(tmp_path / "other_word")], "partner: "), (["--seed", "3"], "seed: 0 -> 3")):
        with pytest.raises(CheckpointError, match=f"--resume continues the RL run in .*{named}"):
            _run_rl(["--model", str(tmp_path / "word"), "--output-dir", str(tmp_path / "w"), "--episodes", "6",
                     "--resume", *changed] + common)
    assert json.loads((tmp_path / "w" / "history.json").read_text())["episode"] == 4  # nothing was played
    assert (tmp_path / "w" / "model" / "config.json").is_file()
    assert rl_main(["--model", str(tmp_path / "larl"), "--partner", str(tmp_path / "word"), "--output-dir",
                    str(tmp_path / "l"), "--episodes", "2"] + common) == 0
    assert rl_main(["--model", str(tmp_path / "larl"), "--output-dir", str(tmp_path / "l2")] + common) == 2  # no partner
