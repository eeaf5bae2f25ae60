"""Training: the accelerate loop (``trainer``) and model/checkpoint folders (``checkpoint``).

Import ``textvae.training.trainer`` for ``train``; this package imports nothing itself, so that loading a model
folder never pulls in accelerate."""
