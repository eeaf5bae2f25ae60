"""Paths through latent space between two codes: the line (lerp) and the great circle (slerp). Geometry only, so
a model's ``interpolate`` and the homotopy measures in ``evaluation.homotopy`` share one definition."""

from __future__ import annotations

import torch

METHODS = ("linear", "spherical")


def interpolation_points(za: torch.Tensor, zb: torch.Tensor, steps: int, method: str = "linear") -> torch.Tensor:
    """``steps`` points from ``za`` to ``zb`` (both (D,)), ends included: (steps, D). ``spherical`` follows the
    great circle (slerp, White 2016), so norms stay typical of a Gaussian prior instead of shrinking mid-way;
    it falls back to the line when the two codes are (anti)parallel or one is zero."""
    if method not in METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; use one of {', '.join(METHODS)}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the two ends), got {steps}")
    za, zb = za.reshape(-1), zb.reshape(-1)
    t = torch.linspace(0, 1, steps, device=za.device, dtype=za.dtype).unsqueeze(1)
    if method == "spherical":
        a, b = za.double(), zb.double()
        cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
        omega = torch.arccos(cos.clamp(-1.0, 1.0))
        sin = torch.sin(omega)
        if float(sin) > 1e-6 and float(a.norm()) > 0 and float(b.norm()) > 0:
            td = t.double()
            path = (torch.sin((1 - td) * omega) * a + torch.sin(td * omega) * b) / sin
            path[0], path[-1] = a, b  # exact ends
            return path.to(za.dtype)
    return (1 - t) * za + t * zb
