"""Small name -> class registries. Imports nothing from the package but its errors (which import nothing), so it
never closes an import circle.

Classes register themselves where they are defined::

    @ENCODERS.register("lstm", "gru")
    class RNNEncoder(nn.Module): ...
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of classes; lookups of unknown names fail with the nearest valid name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, *names: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            for name in names:
                if name in self._items and self._items[name] is not obj:
                    raise KeyError(f"{self.kind} {name!r} is already registered to {self._items[name]!r}")
                self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self._items)) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


def unknown_name_message(kind: str, name: str, valid: "dict | list | tuple") -> str:
    """'unknown encoder 'lstn'; did you mean 'lstm'? (valid: gru, lstm)'."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (valid: {', '.join(valid)})"


ENCODERS: Registry = Registry("encoder")
DECODERS: Registry = Registry("decoder")
LATENTS: Registry = Registry("latent")
SELECTIONS: Registry = Registry("selection module")
MODELS: Registry = Registry("model")
TOKENIZERS: Registry = Registry("tokenizer")
CORPORA: Registry = Registry("corpus")
