"""REINFORCE by self-play against a frozen partner: on the latent policy of a LaRL agent (Zhao et al. 2019) or on
the words of a word-level agent (Lewis et al. 2017).

Each update plays ``episodes_per_update`` games at once (``tasks.negotiation.play``): the learner holds each goal
pair's first goal, the partner (a frozen supervised agent) the second, and the opener is drawn at random. For each
game the learner's reward r is standardised by the running mean and standard deviation of every reward seen so
far (before this one is added), and its k-th of K actions gets the return gamma^(K-1-k) * r (a reward at the end
only); the loss is -sum_k return_k * log p(action_k), averaged over the games. An action is

- latent RL (``larl``): one latent action z per turn, log p(z | c) summed over the latent variables; only the
  policy's parameters move (``policy_parameters``: the utterance, goal and context encoders and the latent head),
  the decoder and the selection head stay as supervised learning left them;
- word RL (``negotiation_word``): one word per step (and the closing <eos>), sampled at ``temperature``; every
  parameter moves, and a supervised update on a random training batch follows every ``supervised_every``
  episodes (Lewis et al.'s ``--sv_train_freq 4``, with its own SGD at ``supervised_learning_rate``, their 0.5),
  which holds the language near the humans'.

Defaults are LaRL's: SGD with learning rate 0.2 (latent) or 0.1 (word), momentum 0.1, Nesterov, gradient
clipping at 1.0, discount 0.95, 4 passes over the self-play goals. One difference: LaRL and Lewis et al. update
after every game; this loop updates once per batch of games (``episodes_per_update`` 1 reproduces them, slowly).

``RLState`` (weights, optimizers, reward statistics, pass and episode index, random streams) is saved by
``save_rl_state`` and restored by ``load_rl_state``; a run resumed from it continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..config import Checked, bounded
from ..errors import CheckpointError, InputError
from ..models.latent_action import LatentActionModel
from ..models.negotiation import NegotiationAgent, NegotiationModel, NegotiationWordModel
from ..tasks.negotiation import Goal, play
from .state_files import LAYOUT_ERRORS, load_state_file, save_state_file

POLICY_MODULES = ("utterance_encoder", "goal_encoder", "context_encoder", "latent")
LEARNING_RATES = {"latent": 0.2, "word": 0.1}  # LaRL's
STATE_FILE = "rl_state.safetensors"  # in an RL run's output folder
LEGACY_STATE_FILE = "rl_state.pt"  # what versions before safetensors-only state files wrote there


@dataclass
class RLConfig(Checked):
    """Settings of the reinforcement-learning stage (LaRL's and Lewis et al.'s by default)."""

    section = "rl"

    learning_rate: Optional[float] = bounded(None, 0, above=True)  # None: 0.2 latent RL, 0.1 word RL
    momentum: float = bounded(0.1, 0, 1, below=True)
    nesterov: bool = True
    grad_clip: float = bounded(1.0, 0)
    discount: float = bounded(0.95, 0, 1)
    passes: int = bounded(4, 1)  # over the goal pairs
    episodes_per_update: int = bounded(16, 1)
    max_turns: int = bounded(20, 1)
    seed: int = bounded(0, 0)
    temperature: float = bounded(0.5, 0, above=True)  # the sampling temperature of word RL and of the partner (Lewis et al.'s)
    supervised_every: int = bounded(4, 0)  # word RL: episodes per interleaved supervised batch (0: none)
    supervised_learning_rate: float = bounded(0.5, 0, above=True)
    supervised_batch_size: int = bounded(16, 1)


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


def is_latent(model: NegotiationModel) -> bool:
    """Latent RL (a LaRL agent) or word RL (a word-level agent)."""
    if isinstance(model, LatentActionModel):
        return True
    if isinstance(model, NegotiationWordModel):
        return False
    raise InputError(f"reinforcement learning needs a larl or negotiation_word model, not {type(model).__name__}")


def policy_parameters(model: NegotiationModel) -> list[torch.nn.Parameter]:
    """What RL moves: for a LaRL agent the parameters p(z|c) depends on (not the decoder or the selection head);
    for a word-level agent every parameter."""
    if is_latent(model):
        return [p for name in POLICY_MODULES for p in getattr(model, name).parameters()]
    return list(model.parameters())


class LearnerAgent(NegotiationAgent):
    """A learner in self-play: speaks by sampling its actions with gradients and keeps their log-probabilities per
    game (``log_probs[game]``: one tensor per turn, one entry per action)."""

    def __init__(self, model: NegotiationModel, generator: torch.Generator) -> None:
        super().__init__(model, strategy="sample")
        self.generator = generator
        self.log_probs: dict[int, list[torch.Tensor]] = {}

    def respond(self, games: list[int], goals: list[Goal], histories: list) -> list[str]:
        model = self.model
        said, log_probs = self.act(model.pieces(model.game_batch(goals, histories, closing=False)))
        for g, lp in zip(games, log_probs):
            self.log_probs.setdefault(g, []).append(lp)
        return said

    def act(self, pieces) -> tuple[list[str], Sequence[torch.Tensor]]:
        raise NotImplementedError


class PolicyAgent(LearnerAgent):
    """Latent RL: z ~ p(z|c) per turn (log p(z|c) kept), the words greedily from z."""

    def act(self, pieces) -> tuple[list[str], Sequence[torch.Tensor]]:
        model = self.model
        z, policy = model.act(pieces.c, generator=self.generator)
        with torch.no_grad():
            said = model.tokenizer.batch_decode(model.generate(z.detach(), strategy="greedy"))
        return said, model.log_prob(policy, z)


class WordPolicyAgent(LearnerAgent):
    """Word RL: the words sampled at ``temperature``, each word's log-probability kept."""

    def __init__(self, model: NegotiationWordModel, generator: torch.Generator, temperature: float = 1.0) -> None:
        super().__init__(model, generator)
        self.temperature = temperature

    def act(self, pieces) -> tuple[list[str], Sequence[torch.Tensor]]:
        model = self.model
        with torch.no_grad():
            ids = model.generate(pieces.c.detach(), strategy="sample", temperature=self.temperature,
                                 generator=self.generator)
        return model.tokenizer.batch_decode(ids), model.token_log_probs(ids, pieces.c, self.temperature)


def learner(model: NegotiationModel, generator: torch.Generator, config: RLConfig) -> LearnerAgent:
    if is_latent(model):
        return PolicyAgent(model, generator)
    return WordPolicyAgent(model, generator, config.temperature)


def sgd(parameters, learning_rate: float, config: RLConfig) -> torch.optim.Optimizer:
    """SGD with LaRL's momentum and Nesterov setting, updating all tensors at once (``foreach``; on a CPU torch
    would otherwise loop over them one by one)."""
    return torch.optim.SGD(parameters, lr=learning_rate, momentum=config.momentum, nesterov=config.nesterov,
                           foreach=True)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """A saved optimizer state (momentum buffers) under this run's settings: torch's ``load_state_dict`` puts the
    saved run's learning rate, momentum and Nesterov flag back, so a resume with new ones would train with the old."""
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kept in zip(optimizer.param_groups, settings):
        group.update(kept)


def make_optimizer(model: NegotiationModel, config: RLConfig) -> torch.optim.Optimizer:
    rate = config.learning_rate
    if rate is None:
        rate = LEARNING_RATES["latent" if is_latent(model) else "word"]
    return sgd(policy_parameters(model), rate, config)


class SupervisedUpdates:
    """Word RL's interleaved supervised updates: random training batches (drawn from a resumable generator) and
    their own SGD optimizer over every parameter."""

    def __init__(self, model: NegotiationModel, dataset, config: RLConfig) -> None:
        self.model, self.dataset, self.config = model, dataset, config
        self.collate = dataset.collator(model.tokenizer)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.optimizer = sgd(model.parameters(), config.supervised_learning_rate, config)

    def step(self) -> float:
        """One update on a random batch; returns its loss."""
        model = self.model
        rows = torch.randint(len(self.dataset), (self.config.supervised_batch_size,), generator=self.generator)
        batch = {k: v.to(model.device) for k, v in self.collate([self.dataset[i] for i in rows.tolist()]).items()}
        was_training = model.training
        model.train()
        try:
            loss = model(batch, step=10**12).loss
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
            self.optimizer.step()
        finally:
            model.train(was_training)
        return float(loss.detach())

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.generator.set_state(state["generator"])


def reinforce_loss(agent: LearnerAgent, rewards: Sequence[float], stats: RewardStats, discount: float) -> torch.Tensor:
    """-sum_k gamma^(K-1-k) * standardised reward * log p(action_k) per game, averaged over games; updates
    ``stats``."""
    terms = []
    for g, reward in enumerate(rewards):
        advantage = stats.standardise(float(reward))
        stats.add(float(reward))
        steps = agent.log_probs.get(g, [])
        if not steps:
            continue
        lp = torch.cat([step.reshape(-1) for step in steps])
        returns = advantage * discount ** torch.arange(lp.numel() - 1, -1, -1, dtype=lp.dtype, device=lp.device)
        terms.append(-(returns * lp).sum())
    if not terms:
        return torch.zeros((), requires_grad=False)
    return torch.stack(terms).sum() / max(1, len(rewards))


def rl_step(model: NegotiationModel, partner, optimizer: torch.optim.Optimizer, pairs: Sequence[tuple[Goal, Goal]],
            state: RLState, config: RLConfig, generator: torch.Generator, select: Optional[Callable] = None,
            supervised: Optional[SupervisedUpdates] = None) -> float:
    """Play ``pairs`` (learner first), update once by REINFORCE, then (word RL) make the supervised updates due by
    the episode count; returns the learner's mean reward."""
    agent = learner(model, generator, config)
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
    if supervised is not None and config.supervised_every:
        every = config.supervised_every
        for _ in range((state.episode + len(pairs)) // every - state.episode // every):
            supervised.step()
    mean = sum(rewards) / max(1, len(rewards))
    state.update += 1
    state.episode += len(pairs)
    state.history.append(mean)
    return mean


def pass_order(n: int, seed: int, p: int) -> list[int]:
    """The order of ``n`` goal pairs in pass ``p``: a shuffle that depends on ``seed`` and ``p`` only."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + p).shuffle(order)
    return order


def episode_pairs(goal_pairs: Sequence[tuple[Goal, Goal]], episode: int, count: int, seed: int) -> list:
    """The ``count`` goal pairs from ``episode`` on, over passes that each shuffle the pairs anew (pass p's order
    depends on ``seed`` and p only, so a resumed run sees the same games)."""
    n = len(goal_pairs)
    out, orders = [], {}
    while len(out) < count:
        p, i = divmod(episode + len(out), n)
        if p not in orders:
            orders[p] = pass_order(n, seed, p)
        out.append(goal_pairs[orders[p][i]])
    return out


def train_rl(model: NegotiationModel, partner, goal_pairs: Sequence[tuple[Goal, Goal]], config: RLConfig,
             state_path: Optional[Path] = None, resume: bool = False, max_updates: Optional[int] = None,
             save_every: int = 0, select: Optional[Callable] = None, supervised_data=None,
             max_episodes: Optional[int] = None, progress: bool = False,
             on_save: Optional[Callable[[RLState], None]] = None) -> RLState:
    """REINFORCE for ``config.passes`` passes over ``goal_pairs`` (at most ``max_episodes`` episodes, or
    ``max_updates`` updates), saving the state to ``state_path`` every ``save_every`` updates and at the end (then
    calling ``on_save``); ``resume`` continues from it. Word RL interleaves supervised updates on batches of
    ``supervised_data`` (a negotiation dataset; None: none)."""
    optimizer = make_optimizer(model, config)
    supervised = None
    if supervised_data is not None and not is_latent(model) and config.supervised_every:
        supervised = SupervisedUpdates(model, supervised_data, config)
    generator = torch.Generator().manual_seed(config.seed)
    state = RLState()
    partner_generator = getattr(partner, "generator", None)
    streams = (generator, partner_generator, supervised)
    if resume and state_path is not None:
        legacy = Path(state_path).with_name(LEGACY_STATE_FILE)
        if Path(state_path).is_file():
            state = load_rl_state(state_path, model, optimizer, *streams)
        elif legacy.is_file():
            raise CheckpointError(f"cannot resume reinforcement learning from {legacy}: it is the pickle file of textvae "
                                  f"versions before safetensors-only state files, which this version never unpickles; "
                                  f"start a new RL run")
    total = config.passes * len(goal_pairs)
    if max_episodes is not None:
        total = min(total, max_episodes)
    bar = tqdm(total=total, initial=state.episode, disable=not progress, desc="rl", dynamic_ncols=True, unit="game")

    def save() -> None:
        if state_path is not None:
            save_rl_state(state_path, model, optimizer, state, *streams)
            if on_save is not None:
                on_save(state)

    try:
        while state.episode < total and (max_updates is None or state.update < max_updates):
            pairs = episode_pairs(goal_pairs, state.episode, min(config.episodes_per_update, total - state.episode),
                                  config.seed)
            mean = rl_step(model, partner, optimizer, pairs, state, config, generator, select, supervised)
            bar.update(len(pairs))
            recent = state.history[-50:]
            bar.set_postfix(reward=f"{mean:.2f}", mean50=f"{sum(recent) / len(recent):.2f}")
            if save_every and state.update % save_every == 0:
                save()
    finally:
        bar.close()
    save()
    return state


def save_rl_state(path: "str | Path", model, optimizer, state: RLState, generator: torch.Generator,
                  partner_generator: Optional[torch.Generator] = None,
                  supervised: Optional[SupervisedUpdates] = None) -> None:
    """Everything a resumed run needs, written atomically as one safetensors file (``state_files``)."""
    path = Path(path)
    blob = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "update": state.update, "episode": state.episode, "history": list(state.history),
        "rewards": [state.rewards.count, state.rewards.mean, state.rewards.m2],
        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        "partner_generator": partner_generator.get_state() if partner_generator is not None else None,
        "supervised": supervised.state_dict() if supervised is not None else None,
    }
    save_state_file(path, blob)


def load_rl_state(path: "str | Path", model, optimizer, generator: torch.Generator,
                  partner_generator: Optional[torch.Generator] = None,
                  supervised: Optional[SupervisedUpdates] = None) -> RLState:
    """Restore what ``save_rl_state`` wrote into ``model``, ``optimizer``, the generators and the supervised
    updates; returns the state."""
    blob = load_state_file(path)
    try:
        model.load_state_dict(blob["model"])
        load_optimizer_state(optimizer, blob["optimizer"])
        if supervised is not None:
            if blob.get("supervised") is None:
                raise KeyError("the supervised updates' state (the run was saved without them)")
            supervised.load_state_dict(blob["supervised"])
        generator.set_state(blob["generator"])
        torch.set_rng_state(blob["torch_rng"])
        if partner_generator is not None and blob["partner_generator"] is not None:
            partner_generator.set_state(blob["partner_generator"])
        count, mean, m2 = blob["rewards"]
        return RLState(int(blob["update"]), int(blob["episode"]), RewardStats(int(count), float(mean), float(m2)),
                       [float(r) for r in blob["history"]])
    except LAYOUT_ERRORS as exc:
        raise CheckpointError(f"cannot resume reinforcement learning from {path}: {type(exc).__name__}: {exc}") from None
