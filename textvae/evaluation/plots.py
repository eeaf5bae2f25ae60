"""Figures: training curves from the trainer's JSONL log, latent activity and KL per latent dimension, and a 2-D PCA
map of posterior means. Drawn on ``matplotlib.figure.Figure`` objects rendered by Agg, never through pyplot, so
importing this module changes no global backend and works on machines without a display. Each ``plot_*`` saves the
figure its ``*_figure`` function returns, so tests can read the artists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from matplotlib.figure import Figure

from .latent_stats import ACTIVE_THRESHOLD, unit_variances

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


def training_curves_figure(records: Sequence[dict], title: Optional[str] = None) -> Figure:
    """One panel per quantity the records hold (see ``curve_panels``), train and validation together; a series of
    one point is drawn as a marker (a line needs two)."""
    panels = curve_panels(records)
    if not panels:
        raise ValueError("the log has no train or valid records with known quantities (rec, kl, elbo, ...)")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (name, train, valid) in zip(axes, panels):
        for (steps, values), colour, label, width in ((train, "tab:blue", "train", 1.2), (valid, "tab:orange", "valid", 1.8)):
            if not steps:
                continue
            if len(steps) == 1:
                ax.plot(steps, values, color=colour, linestyle="none", marker="o", ms=6, label=f"{label} (1 point)")
            else:
                ax.plot(steps, values, color=colour, lw=width, alpha=0.8 if label == "train" else 1.0,
                        marker="o" if label == "valid" else None, ms=3.5, label=label)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def plot_training_curves(log: "PathLike | Sequence[dict]", path: PathLike, title: Optional[str] = None) -> Path:
    """One panel per quantity the log holds (ELBO, reconstruction, KL, KL weight, active units, MI), train and
    validation together; returns the PNG path."""
    records = read_log(log) if isinstance(log, (str, Path)) else list(log)
    return _save(training_curves_figure(records, title), path)


def _array(values) -> np.ndarray:
    return np.asarray(torch.as_tensor(values, dtype=torch.float64).cpu())


def kl_per_dim_figure(
    kl_per_dim: "torch.Tensor | Sequence[float]",
    unit_variances: "torch.Tensor | Sequence[float] | None" = None,
    threshold: float = ACTIVE_THRESHOLD,
    title: Optional[str] = None,
) -> Figure:
    """The mean KL of each latent dimension; with ``unit_variances`` (Var_x E_q[z_d], what ``active_units``
    thresholds) a panel above it of those variances on a log scale, with the threshold drawn, and the dimensions
    at or above it (the active units) coloured in both panels. KL and activity differ: a dimension can hold KL
    (a narrow posterior) whose mean never moves, which free bits produce."""
    kl = _array(kl_per_dim)
    dims = np.arange(len(kl))
    height = 3.4 if unit_variances is None else 5.8
    fig = Figure(figsize=(max(5.0, 0.28 * len(kl) + 2), height), layout="constrained")
    if unit_variances is None:
        ax_kl = fig.subplots()
        ax_kl.bar(dims, kl, color="tab:blue")
    else:
        variances = _array(unit_variances)
        if variances.shape != kl.shape:
            raise ValueError(f"{len(variances)} unit variances for {len(kl)} dimensions")
        active = variances >= threshold
        ax_var, ax_kl = fig.subplots(2, 1, sharex=True)
        smallest = float(variances[variances > 0].min()) if (variances > 0).any() else threshold
        floor = min(threshold / 100, smallest) / 3  # below every nonzero variance, so each shows as a bar
        shown = np.maximum(variances, floor)  # a log axis cannot show 0
        ax_var.bar(dims[active], shown[active], color="tab:blue", label=f"active ({active.sum()})")
        ax_var.bar(dims[~active], shown[~active], color="tab:gray", label=f"inactive ({(~active).sum()})")
        ax_var.axhline(threshold, color="tab:red", linestyle="--", lw=1.2, label=f"threshold {threshold:g}")
        ax_var.set_yscale("log")
        ax_var.set_ylim(bottom=floor)
        ax_var.set_ylabel("Var over sentences of E_q[z_d]", fontsize=9)
        ax_var.set_title(f"active units: {active.sum()}/{len(kl)} (Var_x E_q[z_d] >= {threshold:g})", fontsize=10)
        ax_var.grid(axis="y", alpha=0.3)
        ax_var.legend(fontsize=8)
        ax_kl.bar(dims[active], kl[active], color="tab:blue", label="active")
        ax_kl.bar(dims[~active], kl[~active], color="tab:gray", label="inactive")
    ax_kl.set_xlabel("latent dimension d")
    ax_kl.set_ylabel("mean KL(q(z_d|x) || p(z_d)), nats", fontsize=9)
    ax_kl.set_xticks(dims if len(dims) <= 64 else dims[:: max(1, len(dims) // 32)])
    ax_kl.tick_params(axis="x", labelsize=7)
    ax_kl.set_title(title or f"KL per dimension (total {kl.sum():.2f} nats)", fontsize=10)
    ax_kl.grid(axis="y", alpha=0.3)
    return fig


def plot_kl_per_dim(kl_per_dim: "torch.Tensor | Sequence[float]", path: PathLike, *args, **kwargs) -> Path:
    """Save ``kl_per_dim_figure(kl_per_dim, *args, **kwargs)`` (unit_variances, threshold, title) as a PNG;
    returns its path."""
    return _save(kl_per_dim_figure(kl_per_dim, *args, **kwargs), path)


def pca_basis(x: "torch.Tensor | np.ndarray") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean (D,) of rows (N, D), their first two principal directions (2, D; a zero row where fewer exist) and
    the variance ratios those explain (2,), so later points project onto the same plane."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    k = min(2, vh.size(0))
    components = torch.cat([vh[:k], torch.zeros(2 - k, x.size(1), dtype=vh.dtype)])
    variance = s**2
    ratio = (variance[:2] / variance.sum().clamp_min(1e-300)).numpy()
    return mean.numpy(), components.numpy(), np.pad(ratio, (0, 2 - len(ratio)))


def pca_2d(x: "torch.Tensor | np.ndarray") -> tuple[np.ndarray, np.ndarray]:
    """Project rows (N, D) on their first two principal components: (N, 2) and the explained variance ratios."""
    mean, components, ratio = pca_basis(x)
    return (np.asarray(x, dtype=np.float64) - mean) @ components.T, ratio


def collapse_title(means: "torch.Tensor | np.ndarray", threshold: float = ACTIVE_THRESHOLD) -> Optional[str]:
    """"posterior collapsed: ..." when no dimension of the posterior means (N, D) varies by ``threshold`` across
    sentences (no active unit, the definition of ``active_units``); None otherwise."""
    means = torch.as_tensor(np.asarray(means), dtype=torch.float64)
    if means.dim() != 2 or means.size(1) == 0 or means.size(0) < 2:
        return None
    variances = unit_variances(means)
    if bool((variances >= threshold).any()):
        return None
    return (f"posterior collapsed: 0/{means.size(1)} active units\n(largest Var_x E_q[z_d] "
            f"{float(variances.max()):.1e} < {threshold:g}): the map shows noise")


def latent_map_figure(
    means: "torch.Tensor | np.ndarray",
    labels: Optional[Iterable] = None,
    label_name: Optional[str] = None,
    max_points: int = 5000,
    seed: int = 0,
    title: Optional[str] = None,
    threshold: float = ACTIVE_THRESHOLD,
) -> Figure:
    """Scatter of posterior means on their first two principal components, coloured by ``labels`` when given:
    categories (up to 20, with a legend) or numbers (with a colour bar). At most ``max_points`` points, drawn
    at random with ``seed``. When no unit is active the title says the posterior has collapsed."""
    collapsed = collapse_title(means, threshold)
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
    heading = title or "posterior means (PCA)" + (f" by {label_name}" if label_name else "")
    ax.set_title(f"{collapsed}\n{heading}" if collapsed else heading, fontsize=10,
                 color="tab:red" if collapsed else "black")
    ax.grid(alpha=0.3)
    return fig


def plot_latent_map(means: "torch.Tensor | np.ndarray", path: PathLike, *args, **kwargs) -> Path:
    """Save ``latent_map_figure(means, *args, **kwargs)`` (labels, label_name, max_points, seed, title,
    threshold) as a PNG; returns its path."""
    return _save(latent_map_figure(means, *args, **kwargs), path)


def _tab20(i: int):
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)


def _save(fig: Figure, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
