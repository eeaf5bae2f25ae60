"""Parameter initialisation schemes applied to a whole model after it is built."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def uniform_init(model: nn.Module, init_range: float, embedding_range: float) -> None:
    """Every parameter of ``model`` uniform in [-init_range, init_range], then every ``nn.Embedding`` weight in
    [-embedding_range, embedding_range] with its padding row back at 0 (He et al. 2019, Li et al. 2019). A weight
    tied to an embedding (a tied output layer) counts as the embedding."""
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    for parameter in model.parameters():
        parameter.uniform_(-init_range, init_range)
    for embedding in embeddings:
        embedding.weight.uniform_(-embedding_range, embedding_range)
        if embedding.padding_idx is not None:
            embedding.weight[embedding.padding_idx].zero_()
