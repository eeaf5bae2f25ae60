"""Sentence homotopies (Bowman et al. 2016): paths through latent space between two codes, decoded at each step,
and measures of how smooth a path reads: distinct sentences, token edit distance between neighbours, and the
fraction a grammar accepts (on the embedded corpus, ``textvae.data.synthetic.GRAMMAR.accepts``)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

from ..modules.paths import METHODS, interpolation_points  # noqa: F401  (re-exported)

Grammar = Callable[[str], bool]


# ---------------------------------------------------------------- measures


def token_edit_distance(a: "str | Sequence[str]", b: "str | Sequence[str]") -> int:
    """Levenshtein distance between two sentences counted in whitespace tokens (insert, delete, substitute)."""
    a = a.split() if isinstance(a, str) else list(a)
    b = b.split() if isinstance(b, str) else list(b)
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def path_metrics(sentences: Sequence[str], grammar: Optional[Grammar] = None) -> dict:
    """How a decoded path reads: ``num_distinct`` sentences, ``mean_edit_distance`` (tokens) between neighbours,
    ``changes`` (neighbours that differ) and, with a ``grammar`` callback, ``grammatical_fraction``."""
    if len(sentences) < 2:
        raise ValueError("a path has at least two sentences")
    distances = [token_edit_distance(x, y) for x, y in zip(sentences, sentences[1:])]
    metrics = {
        "steps": len(sentences),
        "num_distinct": len(set(sentences)),
        "mean_edit_distance": sum(distances) / len(distances),
        "changes": sum(d > 0 for d in distances),
    }
    if grammar is not None:
        metrics["grammatical_fraction"] = sum(bool(grammar(s)) for s in sentences) / len(sentences)
    return metrics


def pick_grammar(choice: str, sentences: Sequence[str]) -> Optional[Grammar]:
    """``synthetic``: the embedded corpus grammar; ``auto``: the same when every given sentence is one it
    generates (the model was then most likely trained on that corpus); ``none``: no grammar column."""
    from ..data.synthetic import GRAMMAR

    if choice == "synthetic" or (choice == "auto" and sentences and all(GRAMMAR.accepts(s) for s in sentences)):
        return GRAMMAR.accepts
    return None


# ---------------------------------------------------------------- paths


@dataclass
class HomotopyPath:
    """A decoded path. ``z``: (steps, D); ``t``: the interpolation weights; ``start``/``end``: the input sentences
    (None for prior samples)."""

    t: list[float]
    z: torch.Tensor
    sentences: list[str]
    method: str
    start: Optional[str] = None
    end: Optional[str] = None
    metrics: dict = field(default_factory=dict)

    def table(self, grammar: Optional[Grammar] = None) -> str:
        return format_path(self, grammar)


def latent_path(
    model,
    za: torch.Tensor,
    zb: torch.Tensor,
    steps: int = 8,
    method: str = "linear",
    strategy: str = "greedy",
    grammar: Optional[Grammar] = None,
    **decode_kwargs,
) -> HomotopyPath:
    """Decode ``steps`` points between two latent codes; ``decode_kwargs`` go to ``generate``."""
    z = interpolation_points(za, zb, steps, method)
    sentences = model.decode(z, strategy=strategy, **decode_kwargs)
    t = torch.linspace(0, 1, steps).tolist()
    return HomotopyPath(t, z.cpu(), sentences, method, metrics=path_metrics(sentences, grammar))


def sentence_path(
    model,
    a: str,
    b: str,
    steps: int = 8,
    method: str = "linear",
    strategy: str = "greedy",
    grammar: Optional[Grammar] = None,
    **decode_kwargs,
) -> HomotopyPath:
    """The path between the posterior means of sentences ``a`` and ``b``; its ends decode to their
    reconstructions."""
    za, zb = model.encode([a, b])
    path = latent_path(model, za, zb, steps, method, strategy, grammar, **decode_kwargs)
    path.start, path.end = a, b
    return path


def prior_path(
    model,
    steps: int = 8,
    method: str = "spherical",
    seed: int = 0,
    strategy: str = "greedy",
    grammar: Optional[Grammar] = None,
    **decode_kwargs,
) -> HomotopyPath:
    """The path between two latents drawn from the prior (with ``seed``)."""
    za, zb = model.latent.sample_prior(2, generator=torch.Generator().manual_seed(seed)).to(model.device)
    return latent_path(model, za, zb, steps, method, strategy, grammar, **decode_kwargs)


def average_path_metrics(
    model,
    sentences: Sequence[str],
    num_pairs: int = 20,
    steps: int = 8,
    method: str = "linear",
    seed: int = 0,
    grammar: Optional[Grammar] = None,
    **decode_kwargs,
) -> dict:
    """``path_metrics`` averaged over ``num_pairs`` random pairs of distinct ``sentences`` (drawn with ``seed``),
    decoded in one batch."""
    if len(sentences) < 2:
        raise ValueError("need at least two sentences to pair")
    rng = random.Random(seed)
    pairs = [rng.sample(range(len(sentences)), 2) for _ in range(num_pairs)]
    codes = model.encode(list(sentences[i] for pair in pairs for i in pair)).view(num_pairs, 2, -1)
    z = torch.cat([interpolation_points(c[0], c[1], steps, method) for c in codes])
    decoded = model.decode(z, **decode_kwargs)
    per_path = [path_metrics(decoded[k * steps : (k + 1) * steps], grammar) for k in range(num_pairs)]
    return {key: sum(m[key] for m in per_path) / num_pairs for key in per_path[0]} | {"num_pairs": num_pairs}


def format_path(path: HomotopyPath, grammar: Optional[Grammar] = None) -> str:
    """The path as a text table: step, t, whether the grammar accepts it (with a ``grammar``), the sentence; then
    the inputs and the path's measures."""
    lines = []
    if path.start is not None:
        lines += [f"a: {path.start}", f"b: {path.end}", ""]
    header = f"{'step':>4}  {'t':>5}  " + ("gram  " if grammar else "") + "sentence"
    lines += [header, "-" * max(len(header), 40)]
    for step, (t, sentence) in enumerate(zip(path.t, path.sentences)):
        mark = ("yes   " if grammar(sentence) else "no    ") if grammar else ""
        changed = "" if step == 0 or sentence != path.sentences[step - 1] else "  (same)"
        lines.append(f"{step:>4}  {t:>5.2f}  {mark}{sentence}{changed}")
    metrics = path_metrics(path.sentences, grammar)
    summary = (f"{path.method} interpolation, {metrics['steps']} steps: {metrics['num_distinct']} distinct sentences, "
               f"mean token edit distance between neighbours {metrics['mean_edit_distance']:.2f}")
    if grammar:
        summary += f", grammatical {metrics['grammatical_fraction']:.0%}"
    return "\n".join(lines + ["", summary])
