"""Evaluation: likelihood (IW-NLL, perplexity, ELBO terms), latent usage (KL, MI, active units), generation
quality and diversity (BLEU, self-BLEU, distinct-n), sentence homotopies, and figures.

    from textvae.evaluation import importance_weighted_nll, perplexity, mutual_information, active_units
    nll = importance_weighted_nll(model, sentences, num_samples=500)   # (N,) nats per sentence

The plotting functions and dialogue metrics are loaded on first use, so importing this package does not import
matplotlib or nltk.
"""

from .batches import EvalBatch, eval_batches
from .generation import (
    corpus_bleu,
    distinct_n,
    diversity,
    model_view,
    prior_sample_metrics,
    reconstruction_bleu,
    reconstructions,
    self_bleu,
)
from .homotopy import (
    HomotopyPath,
    average_path_metrics,
    format_path,
    interpolation_points,
    latent_path,
    path_metrics,
    prior_path,
    sentence_path,
    token_edit_distance,
)
from .latent_stats import (
    LatentStats,
    active_units,
    active_units_from_means,
    kl_per_dimension,
    latent_statistics,
    mutual_information,
    mutual_information_from_posteriors,
    posterior_means,
    posteriors,
    unit_variances,
)
from .importance import effective_sample_size, pareto_k
from .likelihood import (
    ELBOTerms,
    IWEstimate,
    elbo_terms,
    importance_weighted_estimate,
    importance_weighted_nll,
    perplexity,
    perplexity_from_nll,
    predicted_tokens,
)

_LAZY = {
    "plot_training_curves": "plots",
    "plot_kl_per_dim": "plots",
    "plot_latent_map": "plots",
    "read_log": "plots",
    "pca_2d": "plots",
    "evaluate_responses": "dialogue",
    "bleu_precision_recall": "dialogue",
    "smoothed_bleu": "dialogue",
    "DialogueMetrics": "dialogue",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DialogueMetrics",
    "bleu_precision_recall",
    "evaluate_responses",
    "smoothed_bleu",
    "ELBOTerms",
    "EvalBatch",
    "HomotopyPath",
    "LatentStats",
    "active_units",
    "active_units_from_means",
    "average_path_metrics",
    "corpus_bleu",
    "distinct_n",
    "diversity",
    "elbo_terms",
    "eval_batches",
    "format_path",
    "importance_weighted_nll",
    "importance_weighted_estimate",
    "IWEstimate",
    "effective_sample_size",
    "pareto_k",
    "interpolation_points",
    "kl_per_dimension",
    "latent_path",
    "latent_statistics",
    "model_view",
    "mutual_information",
    "mutual_information_from_posteriors",
    "path_metrics",
    "pca_2d",
    "perplexity",
    "perplexity_from_nll",
    "plot_kl_per_dim",
    "plot_latent_map",
    "plot_training_curves",
    "posterior_means",
    "posteriors",
    "predicted_tokens",
    "prior_path",
    "prior_sample_metrics",
    "read_log",
    "reconstruction_bleu",
    "reconstructions",
    "self_bleu",
    "sentence_path",
    "token_edit_distance",
    "unit_variances",
]
