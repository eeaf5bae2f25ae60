"""Disentanglement metrics on ground-truth data, computed as disentanglement_lib computes them (``metrics``): the
beta-VAE and FactorVAE scores, MIG, DCI and SAP; a model's codes and the ceilings a perfect text encoder reaches
(``encoders``); latent traversals printed as text (``traversals``).

Codes are numpy arrays (N, D) and factors integer arrays (N, K). A code column is continuous (a Gaussian mean) or,
where ``categorical[d]`` is true, a category index (a categorical latent variable, or a factor fed in as a code);
``latent_variables`` turns a model's concatenated one-hot codes into one column per latent variable.
"""

from .encoders import OracleTextEncoder, latent_variables, metric_ceilings, model_encode_fn
from .metrics import (
    EncodeFn,
    beta_vae_score,
    dci,
    dci_scores,
    discrete_entropy,
    discrete_mutual_info,
    discretize,
    evaluate_disentanglement,
    factor_vae_score,
    format_scores,
    mig,
    sap,
)
from .traversals import traversal_table, traverse

__all__ = [
    "EncodeFn",
    "OracleTextEncoder",
    "beta_vae_score",
    "dci",
    "dci_scores",
    "discrete_entropy",
    "discrete_mutual_info",
    "discretize",
    "evaluate_disentanglement",
    "factor_vae_score",
    "format_scores",
    "latent_variables",
    "metric_ceilings",
    "mig",
    "model_encode_fn",
    "sap",
    "traversal_table",
    "traverse",
]
