"""REINFORCE on the latent policy: reward rises on a toy game, only the policy moves, and a resumed run equals an
uninterrupted one."""

import copy

import torch

from tests.test_latent_action import CONFIGS, data  # noqa: F401  (the tiny data fixture)
from textvae.models import build_model
from textvae.tasks.negotiation import Goal
from textvae.training.rl import (
    PolicyAgent, RewardStats, RLConfig, reinforce_loss, train_rl,
)

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
    agent = PolicyAgent(model, torch.Generator().manual_seed(1))
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


def test_rl_raises_reward_on_a_toy_game_and_moves_only_the_policy(data):  # noqa: F811
    torch.manual_seed(0)
    model = build_model(CONFIGS["larl_cat"](), data.tokenizer)
    words = first_words(model)
    # the toy reward: the partner gives in to one of the words the untrained agent sometimes opens with
    word = min(set(words), key=lambda w: abs(words.count(w) / len(words) - 0.3))
    before = words.count(word) / len(words)
    decoder = copy.deepcopy(model.decoder.state_dict())
    config = RLConfig(episodes_per_update=16, max_turns=2, passes=1000, learning_rate=0.5)
    train_rl(model, Pushover(word), PAIRS, config, max_updates=15, select=take_all)
    after = first_words(model).count(word) / 200
    assert after > before + 0.2, (word, before, after)
    assert all(torch.equal(v, model.decoder.state_dict()[k]) for k, v in decoder.items())


def test_resumed_rl_equals_uninterrupted(data, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    start = build_model(CONFIGS["larl_cat"](), data.tokenizer)
    word = first_words(start)[0]
    config = RLConfig(episodes_per_update=4, max_turns=2, passes=100)
    straight = copy.deepcopy(start)
    s1 = train_rl(straight, Pushover(word), PAIRS, config, max_updates=6, select=take_all)
    resumed = copy.deepcopy(start)
    path = tmp_path / "rl_state.pt"
    train_rl(resumed, Pushover(word), PAIRS, config, state_path=path, max_updates=3, select=take_all)
    fresh = copy.deepcopy(start)  # a new process: the weights come from the state file
    s2 = train_rl(fresh, Pushover(word), PAIRS, config, state_path=path, resume=True, max_updates=6, select=take_all)
    assert s1.history == s2.history and s1.episode == s2.episode == 24
    assert (s1.rewards.count, s1.rewards.mean) == (s2.rewards.count, s2.rewards.mean)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()))
