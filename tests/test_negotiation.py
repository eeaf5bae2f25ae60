"""The Deal or No Deal rules on hand-made cases, and the batched self-play loop with scripted agents."""

import pytest

from textvae.errors import InputError
from textvae.tasks.negotiation import (
    Goal, agreement, all_splits, game_rewards, pareto_optimal, play, points, summarize,
)

COUNTS = (1, 4, 1)  # one book, four hats, one ball
A_VALUES = (0, 2, 2)  # 0*1 + 2*4 + 2*1 = 10
B_VALUES = (4, 1, 2)  # 4*1 + 1*4 + 2*1 = 10


def test_points_value_the_share_and_reject_impossible_shares():
    assert points(COUNTS, A_VALUES, (0, 4, 0)) == 8
    assert points(COUNTS, B_VALUES, (1, 0, 1)) == 6
    assert points(COUNTS, A_VALUES, (0, 0, 0)) == 0
    with pytest.raises(InputError, match="not a share"):
        points(COUNTS, A_VALUES, (0, 5, 0))
    with pytest.raises(InputError, match="not a share"):
        points(COUNTS, A_VALUES, (0, 4))


def test_agreement_needs_complementary_selections():
    assert agreement(COUNTS, (0, 4, 0), (1, 0, 1))
    assert game_rewards(COUNTS, A_VALUES, B_VALUES, (0, 4, 0), (1, 0, 1)) == (8, 6)
    # both claim the hats: mismatched selections score nothing for either side
    assert not agreement(COUNTS, (0, 4, 0), (1, 4, 1))
    assert game_rewards(COUNTS, A_VALUES, B_VALUES, (0, 4, 0), (1, 4, 1)) == (0, 0)
    # leaving an item on the table is not an agreement either
    assert not agreement(COUNTS, (0, 3, 0), (1, 0, 1))
    assert game_rewards(COUNTS, A_VALUES, B_VALUES, None, (1, 0, 1)) == (0, 0)
    assert not agreement(COUNTS, None, None)


def test_pareto_optimality_over_all_splits():
    assert len(all_splits(COUNTS)) == 2 * 5 * 2
    assert pareto_optimal(COUNTS, A_VALUES, B_VALUES, (0, 4, 1))  # A 10, B 4: A cannot gain, B only at A's cost
    assert pareto_optimal(COUNTS, A_VALUES, B_VALUES, (0, 2, 0))  # A 4, B 8
    assert not pareto_optimal(COUNTS, A_VALUES, B_VALUES, (1, 4, 1))  # A 10, B 0: the book is worth 0 to A
    assert not pareto_optimal(COUNTS, A_VALUES, B_VALUES, (1, 2, 0))  # A 4, B 4: (0, 2, 0) gives B 8
    # equal values: every split that gives every item away is optimal
    assert all(pareto_optimal((2, 2, 2), (1, 2, 2), (1, 2, 2), s) for s in all_splits((2, 2, 2)))


class Scripted:
    """Says its lines in order, then <selection>; selects a fixed share (or None)."""

    def __init__(self, lines, share):
        self.lines, self.share, self.calls = list(lines), share, []

    def respond(self, games, goals, histories):
        self.calls.append(len(games))
        return [self.lines[sum(mine for mine, _ in h)] if sum(mine for mine, _ in h) < len(self.lines)
                else "<selection>" for h in histories]

    def select(self, games, goals, histories):
        return [self.share] * len(games)


def test_play_ends_at_selection_scores_and_batches_games():
    a = Scripted(["i want the hats", "ok"], (0, 4, 1))
    b = Scripted(["you can have the hats"], (1, 0, 0))
    pairs = [(Goal(COUNTS, A_VALUES), Goal(COUNTS, B_VALUES))] * 5
    games = play([a, b], pairs, first=[0, 1, 0, 1, 0])
    g = games[0]
    assert [s for s, _ in g.turns] == [0, 1, 0, 1] and g.turns[-1] == (1, "<selection>") and g.ended_by_selection
    assert g.history(1)[0] == (False, "i want the hats")
    assert g.agreed and g.rewards == (10, 4) and g.pareto
    assert [s for s, _ in games[1].turns] == [1, 0, 1]  # B opened game 1 and closed it
    assert a.calls[:2] == [3, 2]  # each turn, an agent answers all its games in one call
    stats = summarize(games)
    assert stats["agreement"] == 100.0 and stats["reward"] == 10 and stats["partner_reward"] == 4
    assert stats["turns"] == pytest.approx((3 * 4 + 2 * 3) / 5)


def test_turn_limit_ends_talk_and_mismatch_scores_zero():
    chatty = Scripted(["hello"] * 100, (0, 4, 1))
    games = play([chatty, Scripted(["hi"] * 100, (0, 4, 1))], [(Goal(COUNTS, A_VALUES), Goal(COUNTS, B_VALUES))],
                 max_turns=6, first=[0])
    assert len(games[0].turns) == 6 and not games[0].ended_by_selection
    assert not games[0].agreed and games[0].rewards == (0, 0) and not games[0].pareto


def test_batched_and_one_at_a_time_play_agree():
    pairs = [(Goal(COUNTS, A_VALUES), Goal(COUNTS, B_VALUES)), (Goal((2, 2, 2), (1, 2, 2)), Goal((2, 2, 2), (3, 1, 1)))]
    make = lambda: [Scripted(["a", "b"], (0, 1, 1)), Scripted(["c"], (1, 1, 0))]  # noqa: E731
    batched = play(make(), pairs * 3, seed=3)
    single = play(make(), pairs * 3, seed=3, batch_size=1)
    assert [(g.turns, g.rewards) for g in batched] == [(g.turns, g.rewards) for g in single]
