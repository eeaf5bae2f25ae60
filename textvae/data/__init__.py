"""Corpora, tokenizers, batching and the data pipelines.

Every corpus registers itself in ``registry.CORPORA`` where it is defined; the one import list below loads those
modules, so ``corpora.load_corpus`` finds every corpus by name whichever ``textvae.data`` module is imported first.
Nothing in ``textvae.data`` imports this package's names, so the list closes no circle."""

from . import corpora, dealornodeal, dialogue, dsentences, images, synthetic  # noqa: F401  (register the corpora)
