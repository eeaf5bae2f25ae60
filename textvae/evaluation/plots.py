"""Figures: training curves from the trainer's JSONL log, KL per latent dimension, and a 2-D PCA map of posterior
means. Drawn on ``matplotlib.figure.Figure`` objects rendered by Agg, never through pyplot, so importing this
module changes no global backend and works on machines without a display."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from matplotlib.figure import Figure

PathLike = Union[str, Path]

# (panel title, train key, valid key, how to get the value): the panels training curves show when the log has them
CURVES = (
    ("ELBO (nats per sentence)", "elbo", "elbo"),
    ("reconstruction (nats)", "rec", "rec"),
    ("KL (nats)", "kl", "kl"),
    ("KL weight", "kl_weight", None),
    ("active units", None, "active_units"),
    ("mutual information (nats)", None, "mutual_information"),
)


def read_log(path: PathLike) -> list[dict]:
    """Records of a JSONL log (one JSON object per line; blank lines skipped)."""
    records = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object")
            records.append(record)
    return records


def _series(records: Sequence[dict], split: str, key: Optional[str]) -> tuple[list, list]:
    steps, values = [], []
    if key is None:
        return steps, values
    for record in records:
        if record.get("split") != split or "step" not in record:
            continue
        value = record.get(key)
        if key == "elbo" and value is None and split == "train" and "rec" in record and "kl" in record:
            value = -(record["rec"] + record["kl"])  # the unweighted ELBO of the training batches
        if isinstance(value, (int, float)):
            steps.append(record["step"])
            values.append(value)
    return steps, values


def curve_panels(records: Sequence[dict]) -> list[tuple[str, tuple[list, list], tuple[list, list]]]:
    """(panel title, (train steps, values), (valid steps, values)) for each quantity the log holds. The training
    ELBO is -(rec + kl) of the logged batch means: unweighted, so it compares with the validation ELBO."""
    panels = []
    for name, train_key, valid_key in CURVES:
        train, valid = _series(records, "train", train_key), _series(records, "valid", valid_key)
        if train[0] or valid[0]:
            panels.append((name, train, valid))
    return panels


def plot_training_curves(log: "PathLike | Sequence[dict]", path: PathLike, title: Optional[str] = None) -> Path:
    """One panel per quantity the log holds (ELBO, reconstruction, KL, KL weight, active units, MI), train and
    validation together; returns the PNG path."""
    records = read_log(log) if isinstance(log, (str, Path)) else list(log)
    panels = curve_panels(records)
    if not panels:
        raise ValueError("the log has no train or valid records with known quantities (rec, kl, elbo, ...)")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (name, train, valid) in zip(axes, panels):
        if train[0]:
            ax.plot(*train, color="tab:blue", lw=1.2, alpha=0.8, label="train")
        if valid[0]:
            ax.plot(*valid, color="tab:orange", lw=1.8, marker="o", ms=3.5, label="valid")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_kl_per_dim(
    kl_per_dim: "torch.Tensor | Sequence[float]",
    path: PathLike,
    unit_variances: "torch.Tensor | Sequence[float] | None" = None,
    threshold: float = 0.01,
    title: Optional[str] = None,
) -> Path:
    """Bar chart of the mean KL of each latent dimension; with ``unit_variances``, active units (variance of the
    posterior mean >= ``threshold``) are coloured and counted in the legend."""
    kl = np.asarray(torch.as_tensor(kl_per_dim, dtype=torch.float64).cpu())
    dims = np.arange(len(kl))
    fig = Figure(figsize=(max(5.0, 0.28 * len(kl) + 2), 3.4), layout="constrained")
    ax = fig.subplots()
    if unit_variances is not None:
        active = np.asarray(torch.as_tensor(unit_variances, dtype=torch.float64).cpu()) >= threshold
        ax.bar(dims[active], kl[active], color="tab:blue", label=f"active ({active.sum()})")
        ax.bar(dims[~active], kl[~active], color="tab:gray", label=f"inactive ({(~active).sum()})")
        ax.legend(fontsize=8)
    else:
        ax.bar(dims, kl, color="tab:blue")
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats)")
    ax.set_xticks(dims if len(dims) <= 64 else dims[:: max(1, len(dims) // 32)])
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title or f"KL per dimension (total {kl.sum():.2f} nats)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def pca_2d(x: "torch.Tensor | np.ndarray") -> tuple[np.ndarray, np.ndarray]:
    """Project rows (N, D) on their first two principal components: (N, 2) and the explained variance ratios."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    centred = x - x.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    k = min(2, vh.size(0))
    projected = centred @ vh[:k].T
    if k < 2:
        projected = torch.cat([projected, torch.zeros(x.size(0), 2 - k, dtype=projected.dtype)], 1)
    variance = s**2
    ratio = (variance[:2] / variance.sum().clamp_min(1e-300)).numpy()
    return projected.numpy(), np.pad(ratio, (0, 2 - len(ratio)))


def plot_latent_map(
    means: "torch.Tensor | np.ndarray",
    path: PathLike,
    labels: Optional[Iterable] = None,
    label_name: Optional[str] = None,
    max_points: int = 5000,
    seed: int = 0,
    title: Optional[str] = None,
) -> Path:
    """Scatter of posterior means on their first two principal components, coloured by ``labels`` when given:
    categories (up to 20, with a legend) or numbers (with a colour bar). At most ``max_points`` points, drawn
    at random with ``seed``."""
    points, ratio = pca_2d(means)
    labels = None if labels is None else np.asarray(list(labels))
    if labels is not None and len(labels) != len(points):
        raise ValueError(f"{len(labels)} labels for {len(points)} points")
    if len(points) > max_points:
        keep = np.random.default_rng(seed).choice(len(points), max_points, replace=False)
        points, labels = points[keep], None if labels is None else labels[keep]
    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.subplots()
    style = dict(s=9, alpha=0.7, linewidths=0)
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], color="tab:blue", **style)
    elif labels.dtype.kind in "if" and len(np.unique(labels)) > 20:
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels.astype(float), cmap="viridis", **style)
        fig.colorbar(scatter, ax=ax, label=label_name)
    else:
        values = np.unique(labels)
        if len(values) > 20:
            raise ValueError(f"{len(values)} label categories; a legend shows at most 20")
        colours = [f"C{i % 10}" if len(values) <= 10 else _tab20(i) for i in range(len(values))]
        for value, colour in zip(values, colours):
            mask = labels == value
            ax.scatter(points[mask, 0], points[mask, 1], color=colour, label=str(value), **style)
        ax.legend(title=label_name, fontsize=7, title_fontsize=8, markerscale=1.5, loc="best")
    ax.set_xlabel(f"PC 1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({ratio[1]:.0%} of variance)")
    ax.set_title(title or "posterior means (PCA)" + (f" by {label_name}" if label_name else ""), fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _tab20(i: int):
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)


def _save(fig: Figure, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
