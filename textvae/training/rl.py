"""REINFORCE on the latent policy of a LaRL agent, by self-play against a frozen partner (Zhao et al. 2019).

Each update plays ``episodes_per_update`` games at once (``tasks.negotiation.play``): the learner holds each goal
pair's first goal, the partner (a frozen supervised agent) the second, and the opener is drawn at random. For each
game the learner's reward r is standardised by the running mean and standard deviation of every reward seen so
far (before this one is added), and its k-th of K turns gets the return gamma^(K-1-k) * r (a reward at the end
only); the loss is -sum_k return_k * log p(z_k | c_k), with log p summed over the latent variables, averaged over
the games. Only the policy's parameters are optimised (``policy_parameters``: the utterance, goal and context
encoders and the latent head); the decoder and the selection head stay as supervised learning left them.

Defaults are LaRL's: SGD with learning rate 0.2, momentum 0.1, Nesterov, gradient clipping at 1.0, discount 0.95,
4 passes over the self-play goals. One difference: LaRL updates after every game; this loop updates once per
batch of games (1 reproduces LaRL, slowly).

``RLState`` (policy weights, optimizer, reward statistics, pass and episode index, random streams) is saved by
``save_rl_state`` and restored by ``load_rl_state``; a run resumed from it continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from ..config import Checked, bounded
from ..errors import CheckpointError
from ..models.latent_action import LatentActionModel
from ..models.negotiation import NegotiationAgent
from ..tasks.negotiation import Goal, play

POLICY_MODULES = ("utterance_encoder", "goal_encoder", "context_encoder", "latent")


@dataclass
class RLConfig(Checked):
    """Settings of the reinforcement-learning stage (LaRL's for latent actions)."""

    section = "rl"

    learning_rate: float = bounded(0.2, 0, above=True)
    momentum: float = bounded(0.1, 0, 1, below=True)
    nesterov: bool = True
    grad_clip: float = bounded(1.0, 0)
    discount: float = bounded(0.95, 0, 1)
    passes: int = bounded(4, 1)  # over the goal pairs
    episodes_per_update: int = bounded(16, 1)
    max_turns: int = bounded(20, 1)
    seed: int = bounded(0, 0)


@dataclass
class RewardStats:
    """Running mean and variance of rewards (Welford), exactly resumable."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def standardise(self, reward: float) -> float:
        """(reward - mean) / std of the rewards seen so far (std 1 until two are seen)."""
        std = math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 1.0
        return (reward - self.mean) / max(std, 1e-6)

    def add(self, reward: float) -> None:
        self.count += 1
        delta = reward - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (reward - self.mean)


@dataclass
class RLState:
    """Where an RL run stands: updates done, the next episode (pair index over all passes), reward statistics."""

    update: int = 0
    episode: int = 0
    rewards: RewardStats = field(default_factory=RewardStats)
    history: list = field(default_factory=list)  # mean learner reward per update


def policy_parameters(model: LatentActionModel) -> list[torch.nn.Parameter]:
    """The parameters that p(z|c) depends on; the decoder and the selection head are left out."""
    return [p for name in POLICY_MODULES for p in getattr(model, name).parameters()]


class PolicyAgent(NegotiationAgent):
    """A LaRL agent that samples z ~ p(z|c) with gradients and keeps log p(z|c) per game and turn."""

    def __init__(self, model: LatentActionModel, generator: torch.Generator) -> None:
        super().__init__(model, strategy="sample")
        self.generator = generator
        self.log_probs: dict[int, list[torch.Tensor]] = {}

    def respond(self, games: list[int], goals: list[Goal], histories: list) -> list[str]:
        model = self.model
        pieces = model.pieces(model.game_batch(goals, histories, closing=False))
        z, policy = model.act(pieces.c, generator=self.generator)
        log_probs = model.log_prob(policy, z)
        for g, lp in zip(games, log_probs):
            self.log_probs.setdefault(g, []).append(lp)
        with torch.no_grad():
            return model.tokenizer.batch_decode(model.generate(z.detach(), strategy="greedy"))


def make_optimizer(model: LatentActionModel, config: RLConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(policy_parameters(model), lr=config.learning_rate, momentum=config.momentum,
                           nesterov=config.nesterov)


def reinforce_loss(agent: PolicyAgent, rewards: Sequence[float], stats: RewardStats, discount: float) -> torch.Tensor:
    """-sum_k gamma^(K-1-k) * standardised reward * log p(z_k|c_k) per game, averaged over games; updates ``stats``."""
    terms = []
    for g, reward in enumerate(rewards):
        advantage = stats.standardise(float(reward))
        stats.add(float(reward))
        steps = agent.log_probs.get(g, [])
        for k, lp in enumerate(steps):
            terms.append(-(discount ** (len(steps) - 1 - k)) * advantage * lp)
    if not terms:
        return torch.zeros((), requires_grad=False)
    return torch.stack(terms).sum() / max(1, len(rewards))


def rl_step(model: LatentActionModel, partner, optimizer: torch.optim.Optimizer, pairs: Sequence[tuple[Goal, Goal]],
            state: RLState, config: RLConfig, generator: torch.Generator, select: Optional[Callable] = None) -> float:
    """Play ``pairs`` (learner first), update the policy once; returns the learner's mean reward."""
    agent = PolicyAgent(model, generator)
    if select is not None:
        agent.select = select
    first = [int(torch.randint(2, (1,), generator=generator)) for _ in pairs]
    was_training = model.training
    model.eval()  # no dropout in the policy's forward passes
    try:
        results = play([agent, partner], pairs, max_turns=config.max_turns, batch_size=len(pairs), first=first)
        rewards = [r.rewards[0] for r in results]
        loss = reinforce_loss(agent, rewards, state.rewards, config.discount)
        optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(policy_parameters(model), config.grad_clip)
            optimizer.step()
    finally:
        model.train(was_training)
    mean = sum(rewards) / max(1, len(rewards))
    state.update += 1
    state.episode += len(pairs)
    state.history.append(mean)
    return mean


def episode_pairs(goal_pairs: Sequence[tuple[Goal, Goal]], episode: int, count: int, seed: int) -> list:
    """The ``count`` goal pairs from ``episode`` on, over passes that each shuffle the pairs anew (pass p's order
    depends on ``seed`` and p only, so a resumed run sees the same games)."""
    n = len(goal_pairs)
    out = []
    while len(out) < count:
        p, i = divmod(episode + len(out), n)
        order = list(range(n))
        random.Random(seed * 1_000_003 + p).shuffle(order)
        out.append(goal_pairs[order[i]])
    return out


def train_rl(model: LatentActionModel, partner, goal_pairs: Sequence[tuple[Goal, Goal]], config: RLConfig,
             state_path: Optional[Path] = None, resume: bool = False, max_updates: Optional[int] = None,
             save_every: int = 0, select: Optional[Callable] = None) -> RLState:
    """REINFORCE for ``config.passes`` passes over ``goal_pairs`` (or ``max_updates`` updates), saving the state to
    ``state_path`` every ``save_every`` updates and at the end; ``resume`` continues from it."""
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    state = RLState()
    partner_generator = getattr(partner, "generator", None)
    if resume and state_path is not None and Path(state_path).is_file():
        state = load_rl_state(state_path, model, optimizer, generator, partner_generator)
    total = config.passes * len(goal_pairs)
    while state.episode < total and (max_updates is None or state.update < max_updates):
        pairs = episode_pairs(goal_pairs, state.episode, min(config.episodes_per_update, total - state.episode),
                              config.seed)
        rl_step(model, partner, optimizer, pairs, state, config, generator, select)
        if state_path is not None and save_every and state.update % save_every == 0:
            save_rl_state(state_path, model, optimizer, state, generator, partner_generator)
    if state_path is not None:
        save_rl_state(state_path, model, optimizer, state, generator, partner_generator)
    return state


def save_rl_state(path: "str | Path", model, optimizer, state: RLState, generator: torch.Generator,
                  partner_generator: Optional[torch.Generator] = None) -> None:
    """Everything a resumed run needs, written atomically (tensors and plain numbers only)."""
    path = Path(path)
    blob = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "update": state.update, "episode": state.episode, "history": list(state.history),
        "rewards": [state.rewards.count, state.rewards.mean, state.rewards.m2],
        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        "partner_generator": partner_generator.get_state() if partner_generator is not None else None,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_rl_state(path: "str | Path", model, optimizer, generator: torch.Generator,
                  partner_generator: Optional[torch.Generator] = None) -> RLState:
    """Restore what ``save_rl_state`` wrote into ``model``, ``optimizer`` and the generators; returns the state."""
    try:
        blob = torch.load(path, weights_only=True)
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot resume reinforcement learning from {path}: {exc}") from None
    generator.set_state(blob["generator"])
    torch.set_rng_state(blob["torch_rng"])
    if partner_generator is not None and blob["partner_generator"] is not None:
        partner_generator.set_state(blob["partner_generator"])
    count, mean, m2 = blob["rewards"]
    return RLState(blob["update"], blob["episode"], RewardStats(int(count), float(mean), float(m2)),
                   list(blob["history"]))
