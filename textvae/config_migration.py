"""Keys that moved between config sections, and the rewriting of configs written before they moved (kept out of
``config`` so it stays one readable module). Imports nothing from the package."""

from __future__ import annotations

from typing import Any

MOVED_KEYS = {
    "data.max_length": "model.max_length (one length limit for training, evaluation and the API)",
    "data.overlong": "model.overlong (one policy for training, evaluation and the API)",
}


MOVED_LENGTH_KEYS = ("max_length", "overlong")


def migrate(data: Any) -> Any:
    """Configs written before one length setting served training, evaluation and the API had ``data.max_length``
    and ``data.overlong`` beside the model's: a set ``data.max_length`` becomes ``model.max_length`` (it was the
    limit the data saw), and ``data.overlong`` is dropped with a warning when it differs from the model's policy."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        return data
    if not any(key in data["data"] for key in MOVED_LENGTH_KEYS):
        return data
    import warnings

    data = {**data, "data": dict(data["data"])}
    model = dict(data.get("model") or {})
    limit = data["data"].pop("max_length", None)
    if limit is not None:
        model["max_length"] = limit
    overlong = data["data"].pop("overlong", None)
    applied = model.get("overlong", "truncate")
    if overlong is not None and overlong != applied:
        warnings.warn(
            f"data.overlong is gone: model.overlong ({applied!r}) now applies to training, evaluation and the API "
            f"alike; this config's data.overlong={overlong!r} is ignored",
            stacklevel=3,
        )
    data["model"] = model
    return data


def migrate_saved_model(model: Any) -> Any:
    """A saved model's config (``config.json``, the model section written in full) from before
    ``model.negotiation.selection`` existed had the MLP selection head: say so, since the default is now attention."""
    if isinstance(model, dict) and isinstance(model.get("negotiation"), dict) and "selection" not in model["negotiation"]:
        return {**model, "negotiation": {**model["negotiation"], "selection": "head"}}
    return model
