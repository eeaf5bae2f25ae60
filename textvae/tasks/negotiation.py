"""The Deal or No Deal game (Lewis et al. 2017): goals, points, agreement, Pareto optimality, batched self-play.

Two agents share a pool of items (``counts``: books, hats, balls) and each has private ``values`` (each agent's
total is 10). They talk in turns; a turn that is ``<selection>`` ends the talk, and so does the turn limit (as in
FAIR's ``Dialog.run``, both agents still select then). Each agent then selects the items it takes, or no deal
(None). The selections agree when they are both splits and add up to the counts; then each agent scores the value
of its share, otherwise both score 0.

``play`` runs many games at once: each turn, every agent answers all the games in which it is to speak in one call
(``Agent.respond``), so a neural agent decodes a batch instead of one game at a time.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

from ..data.dealornodeal import ITEM_NAMES, NUM_ITEMS, SELECTION, Goal, parse_goal, read_goal_pairs
from ..errors import InputError

__all__ = [
    "Agent", "GameResult", "Goal", "History", "ITEM_NAMES", "NUM_ITEMS", "SELECTION", "agreement", "all_splits", "game_rewards",
    "pareto_optimal", "parse_goal", "play", "points", "read_goal_pairs", "summarize",
]

Items = Sequence[int]
History = list[tuple[bool, str]]  # one game from one agent's side: (spoken by this agent, utterance) per turn


def _check_items(counts: Items, items: Items, what: str = "items") -> None:
    if len(items) != len(counts) or any(not 0 <= int(i) <= int(c) for i, c in zip(items, counts)):
        raise InputError(f"{what} {tuple(items)} is not a share of the counts {tuple(counts)}")


def points(counts: Items, values: Items, items: Items) -> int:
    """The value of taking ``items`` (one count per item type) for an agent with ``values``."""
    _check_items(counts, items)
    if len(values) != len(counts):
        raise InputError(f"values {tuple(values)} and counts {tuple(counts)} differ in length")
    return int(sum(int(v) * int(i) for v, i in zip(values, items)))


def agreement(counts: Items, items_a: Optional[Items], items_b: Optional[Items]) -> bool:
    """Whether two selections agree: both are shares (not None, no deal) and together take exactly every item."""
    if items_a is None or items_b is None:
        return False
    _check_items(counts, items_a, "items_a")
    _check_items(counts, items_b, "items_b")
    return all(int(a) + int(b) == int(c) for a, b, c in zip(items_a, items_b, counts))


def game_rewards(counts: Items, values_a: Items, values_b: Items, items_a: Optional[Items],
                 items_b: Optional[Items]) -> tuple[int, int]:
    """Both agents' points: the value of each one's share when the selections agree, else (0, 0)."""
    if not agreement(counts, items_a, items_b):
        return 0, 0
    return points(counts, values_a, items_a), points(counts, values_b, items_b)


def all_splits(counts: Items) -> list[tuple[int, ...]]:
    """Every share agent A can take (B takes the rest): prod(count + 1) of them."""
    return list(itertools.product(*(range(int(c) + 1) for c in counts)))


def pareto_optimal(counts: Items, values_a: Items, values_b: Items, items_a: Items) -> bool:
    """Whether A taking ``items_a`` and B the rest is Pareto optimal: no other split gives one agent more and the
    other no less."""
    _check_items(counts, items_a)
    rest = [int(c) - int(i) for c, i in zip(counts, items_a)]
    score_a, score_b = points(counts, values_a, items_a), points(counts, values_b, rest)
    for split in all_splits(counts):
        a = points(counts, values_a, split)
        b = points(counts, values_b, [int(c) - s for c, s in zip(counts, split)])
        if a >= score_a and b >= score_b and (a > score_a or b > score_b):
            return False
    return True


class Agent(Protocol):
    """What ``play`` needs of a player. ``games`` are indices into the goals passed to ``play`` (agents that keep
    per-game records, such as a policy's log-probabilities, key them by it); ``goals`` and ``histories`` are the
    agent's own view of each of those games."""

    def respond(self, games: list[int], goals: list[Goal], histories: list[History]) -> list[str]:
        """One utterance per game; ``<selection>`` ends that game's talk."""

    def select(self, games: list[int], goals: list[Goal], histories: list[History]) -> list[Optional[tuple[int, ...]]]:
        """The share each game's agent takes (item counts), or None for no deal."""


@dataclass
class GameResult:
    """One game: the goals of agent 0 and 1, the turns as (agent, utterance), each agent's selection, the outcome."""

    goals: tuple[Goal, Goal]
    turns: list[tuple[int, str]] = field(default_factory=list)
    selections: tuple[Optional[tuple[int, ...]], Optional[tuple[int, ...]]] = (None, None)
    agreed: bool = False
    rewards: tuple[int, int] = (0, 0)
    pareto: bool = False  # agreed on a Pareto-optimal split
    ended_by_selection: bool = False  # False: the turn limit ended the talk

    def history(self, agent: int) -> History:
        """The turns as ``agent`` sees them."""
        return [(speaker == agent, text) for speaker, text in self.turns]

    def transcript(self, names: tuple[str, str] = ("A", "B")) -> str:
        """The game as text: goals, turns, selections and points."""
        lines = []
        for k in (0, 1):
            g = self.goals[k]
            lines.append(f"{names[k]} goal: " + ", ".join(f"{c} {n}{'s' if c != 1 else ''} worth {v}"
                                                          for c, n, v in zip(g.counts, ITEM_NAMES, g.values)))
        lines += [f"{names[s]}: {t}" for s, t in self.turns]
        for k in (0, 1):
            sel = self.selections[k]
            lines.append(f"{names[k]} selects: " + ("no deal" if sel is None else
                                                    ", ".join(f"{n} {name}" for n, name in zip(sel, ITEM_NAMES))))
        lines.append(("agreed" + (", Pareto optimal" if self.pareto else "") if self.agreed else "no agreement")
                     + f"; points {names[0]} {self.rewards[0]}, {names[1]} {self.rewards[1]}")
        return "\n".join(lines)


def play(
    agents: Sequence[Agent], goal_pairs: Sequence[tuple[Goal, Goal]], max_turns: int = 20, batch_size: int = 256,
    first: Optional[Sequence[int]] = None, seed: Optional[int] = None,
) -> list[GameResult]:
    """Play one game per goal pair between ``agents[0]`` (first goal) and ``agents[1]`` (second goal), up to
    ``batch_size`` games at a time; ``first[i]`` is the agent who opens game i (default: at random, from ``seed``).
    Returns the games in the order of ``goal_pairs``."""
    if len(agents) != 2:
        raise InputError(f"a negotiation needs two agents, got {len(agents)}")
    if max_turns < 1 or batch_size < 1:
        raise InputError(f"max_turns and batch_size must be at least 1, got {max_turns} and {batch_size}")
    rng = random.Random(seed)
    if first is None:
        first = [rng.randrange(2) for _ in goal_pairs]
    results = [GameResult(goals=(a, b)) for a, b in goal_pairs]
    for start in range(0, len(results), batch_size):
        _play_batch(agents, results, list(range(start, min(start + batch_size, len(results)))), first, max_turns)
    return results


def _play_batch(agents: Sequence[Agent], results: list[GameResult], games: list[int], first: Sequence[int],
                max_turns: int) -> None:
    talking = set(games)
    for turn in range(max_turns):
        for k in (0, 1):
            mine = [g for g in games if g in talking and (first[g] + turn) % 2 == k]
            if not mine:
                continue
            said = agents[k].respond(mine, [results[g].goals[k] for g in mine], [results[g].history(k) for g in mine])
            for g, text in zip(mine, said):
                results[g].turns.append((k, text))
                if text.strip() == SELECTION:
                    results[g].ended_by_selection = True
                    talking.discard(g)
        if not talking:
            break
    choices = [agents[k].select(games, [results[g].goals[k] for g in games], [results[g].history(k) for g in games])
               for k in (0, 1)]
    for j, g in enumerate(games):
        r = results[g]
        a, b = r.goals
        r.selections = (choices[0][j], choices[1][j])
        r.agreed = agreement(a.counts, *r.selections)
        r.rewards = game_rewards(a.counts, a.values, b.values, *r.selections)
        r.pareto = r.agreed and pareto_optimal(a.counts, a.values, b.values, r.selections[0])


def summarize(results: Sequence[GameResult], agent: int = 0) -> dict[str, float]:
    """Mean points of both agents over all games and over agreed games, agreement and Pareto-optimal rates (%,
    over all games), and turns per game; ``agent`` is the one whose points come first (``reward``)."""
    n = max(1, len(results))
    agreed = [r for r in results if r.agreed]
    other = 1 - agent
    return {
        "games": len(results),
        "reward": sum(r.rewards[agent] for r in results) / n,
        "partner_reward": sum(r.rewards[other] for r in results) / n,
        "agreed_reward": sum(r.rewards[agent] for r in agreed) / max(1, len(agreed)),
        "agreed_partner_reward": sum(r.rewards[other] for r in agreed) / max(1, len(agreed)),
        "agreement": 100.0 * len(agreed) / n,
        "pareto": 100.0 * sum(r.pareto for r in results) / n,
        "turns": sum(len(r.turns) for r in results) / n,
    }
