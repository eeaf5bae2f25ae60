"""Latent traversals printed as text: one sentence's code decoded with one latent variable changed."""

from __future__ import annotations

from typing import Optional, Sequence

import torch


def traverse(model, sentence: str, variable: int, values: Optional[Sequence[float]] = None,
             strategy: str = "greedy", **decode_kwargs) -> list[tuple[str, str]]:
    """Decode ``sentence``'s code with one latent variable changed: a Gaussian dimension set to each of ``values``
    (default -2..2), or a categorical variable set to each of its categories. Returns (value, sentence) pairs.
    Variables count Gaussian dimensions first, then categorical variables; ``decode_kwargs`` go to ``decode``."""
    latent = model.latent
    z = model.encode([sentence])
    sizes = list(getattr(latent, "category_sizes", []) or [])
    num_cont = latent.code_size - sum(sizes)
    if not 0 <= variable < num_cont + len(sizes):
        raise ValueError(f"variable must be in [0, {num_cont + len(sizes)}), got {variable}")
    if variable < num_cont:
        values = list(values) if values is not None else [-2.0, -1.0, 0.0, 1.0, 2.0]
        batch = z.repeat(len(values), 1)
        batch[:, variable] = torch.tensor(values, dtype=batch.dtype, device=batch.device)
        labels = [f"{v:+.2f}" for v in values]
    else:
        i = variable - num_cont
        n = sizes[i]
        values = list(values) if values is not None else list(range(n))
        offset = num_cont + sum(sizes[:i])
        batch = z.repeat(len(values), 1)
        batch[:, offset : offset + n] = 0
        batch[torch.arange(len(values)), offset + torch.tensor([int(v) for v in values])] = 1
        labels = [f"c={int(v)}" for v in values]
    return list(zip(labels, model.decode(batch, strategy=strategy, **decode_kwargs)))


def traversal_table(model, sentence: str, variables: Optional[Sequence[int]] = None, max_values: int = 6) -> str:
    """A printable table of ``traverse`` for each variable (all by default), at most ``max_values`` per variable."""
    latent = model.latent
    sizes = list(getattr(latent, "category_sizes", []) or [])
    num_vars = latent.code_size - sum(sizes) + len(sizes)
    lines = [f"input: {sentence}", f"{'variable':>8}  {'value':>6}  decoded"]
    for v in variables if variables is not None else range(num_vars):
        cont = v < num_vars - len(sizes)
        values = None if cont else list(range(min(max_values, sizes[v - (num_vars - len(sizes))])))
        for label, text in traverse(model, sentence, v, values):
            lines.append(f"{('z' if cont else 'c') + str(v):>8}  {label:>6}  {text}")
    return "\n".join(lines)
