"""Evaluation of Deal or No Deal agents, each against a frozen partner (the supervised word agent), as LaRL and
Lewis et al. report it:

- the game (``tasks.negotiation.summarize``): mean reward of the agent and its partner over all games and over
  agreed games, agreement % and Pareto-optimal % (over all games), turns per game;
- diversity of the agent's own utterances (its ``<selection>`` turns left out): how many it said, how many
  distinct utterances and distinct words;
- language quality: the perplexity per token of the agent's utterances (words + end, ``<selection>`` turns
  included, as the supervised model scores them in training) under a frozen supervised word model, each turn
  conditioned on the agent's goal and the dialogue before it; exact for a word model, the ELBO's bound for a
  latent one;
- a model's test-set perplexity: ``forward_elbo`` over the test split's responses (exact for ``negotiation_word``,
  an upper bound from the ELBO for ``larl``);
- the selection head's accuracy on the test split: the share of dialogues whose agreed split it predicts exactly
  (every item count right), which bounds how often two agents' selections can agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

from ..data.dealornodeal import SELECTION
from ..tasks.negotiation import Goal, GameResult, play, summarize
from .likelihood import ForwardELBO, forward_elbo


@dataclass
class NegotiationMetrics:
    """One agent's figures over a set of games (``agent``'s side first; rates in %)."""

    games: int
    reward: float
    partner_reward: float
    agreed_reward: float
    agreed_partner_reward: float
    agreement: float
    pareto: float
    turns: float
    utterances: int  # the agent's turns other than <selection>
    unique_utterances: int
    unique_words: int
    language_ppl: Optional[float] = None  # under the frozen supervised model (None: not measured)

    def as_dict(self) -> dict:
        return asdict(self)


def own_utterances(results: Sequence[GameResult], agent: int = 0) -> list[str]:
    """What ``agent`` said in every game, in order, ``<selection>`` turns left out."""
    return [text for r in results for speaker, text in r.turns if speaker == agent and text.strip() != SELECTION]


def diversity(results: Sequence[GameResult], agent: int = 0) -> dict[str, int]:
    """The agent's utterances: how many, how many distinct, and how many distinct words they use."""
    said = own_utterances(results, agent)
    return {"utterances": len(said), "unique_utterances": len(set(said)),
            "unique_words": len({w for s in said for w in s.split()})}


def utterance_batches(model, results: Sequence[GameResult], agent: int = 0, batch_size: int = 256) -> list[dict]:
    """``model``'s batches of every turn ``agent`` spoke, each the response to the dialogue before it, with the
    agent's goal."""
    goals: list[Goal] = []
    histories = []
    for r in results:
        history = r.history(agent)
        for n, (own, _) in enumerate(history):
            if own:
                goals.append(r.goals[agent])
                histories.append(history[: n + 1])
    return [model.game_batch(goals[i: i + batch_size], histories[i: i + batch_size], closing=True)
            for i in range(0, len(goals), batch_size)]


def language_perplexity(model, results: Sequence[GameResult], agent: int = 0, batch_size: int = 256) -> float:
    """Perplexity per token of ``agent``'s turns under ``model`` (a frozen supervised agent): exp(sum NLL / tokens);
    nan when the agent never spoke."""
    batches = utterance_batches(model, results, agent, batch_size)
    if not batches:
        return float("nan")
    return forward_elbo(model, batches).perplexity_bound()


def split_elbo(model, dataset, batch_size: int = 128) -> ForwardELBO:
    """``forward_elbo`` over a negotiation dataset (a split), in order: the response NLL and KL sums, and the
    selection head's exact splits and agreed-split rows (``sums["selection_accuracy"]``), from one pass."""
    from ..data.pipeline import make_loader

    return forward_elbo(model, make_loader(dataset, model.tokenizer, batch_size, shuffle=False))


def response_perplexity(model, dataset, batch_size: int = 128) -> float:
    """The response perplexity per token of a negotiation dataset (the test split) under ``model``: exact for a
    word-level agent, the ELBO's upper bound for a latent one."""
    return split_elbo(model, dataset, batch_size).perplexity_bound()


def selection_accuracy(model, dataset, batch_size: int = 128) -> float:
    """Share of ``dataset``'s rows with an agreed split (the closing turns) whose split the model's selection head
    predicts exactly, every item count right; nan when there is none."""
    return split_elbo(model, dataset, batch_size).extras.get("selection_accuracy", float("nan"))


def game_metrics(results: Sequence[GameResult], agent: int = 0, language_model=None) -> NegotiationMetrics:
    """``agent``'s figures over played games; the language perplexity when a ``language_model`` is given."""
    s = summarize(results, agent)
    return NegotiationMetrics(
        games=int(s["games"]), reward=s["reward"], partner_reward=s["partner_reward"],
        agreed_reward=s["agreed_reward"], agreed_partner_reward=s["agreed_partner_reward"],
        agreement=s["agreement"], pareto=s["pareto"], turns=s["turns"], **diversity(results, agent),
        language_ppl=language_perplexity(language_model, results, agent) if language_model is not None else None,
    )


def evaluate_against(agent, partner, goal_pairs: Sequence[tuple[Goal, Goal]], language_model=None,
                     max_turns: int = 20, seed: int = 0, batch_size: int = 256) -> tuple[NegotiationMetrics, list[GameResult]]:
    """Play ``agent`` (each pair's first goal) against ``partner`` (a frozen agent) on ``goal_pairs``, the opener
    drawn from ``seed``; returns the agent's metrics and the games."""
    results = play([agent, partner], goal_pairs, max_turns=max_turns, batch_size=batch_size, seed=seed)
    return game_metrics(results, 0, language_model), results
