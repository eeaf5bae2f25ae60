"""Config dataclass machinery: fields with choices and numeric ranges that are checked whenever a config is built,
and values checked against their type hints, with errors that name the dotted key."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import field
from typing import Any, Union

from .errors import ConfigError


def choice(default: Any, *choices: Any) -> Any:
    """A dataclass field whose value must be one of ``choices``."""
    return field(default=default, metadata={"choices": choices})


def bounded(default: Any, low: "float | None" = None, high: "float | None" = None, *, above: bool = False,
            below: bool = False) -> Any:
    """A numeric field that must lie in [low, high] (``above``/``below`` make an end open); None and list values
    are checked element by element; ``default`` may be a factory (a callable) for list fields."""
    spec = {"range": (low, high, above, below)}
    if callable(default):
        return field(default_factory=default, metadata=spec)
    return field(default=default, metadata=spec)


def _range_text(low, high, above: bool, below: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"
    if low is not None:
        return f"{'above' if above else 'at least'} {low:g}"
    return f"{'below' if below else 'at most'} {high:g}"


def _check_range(key: str, value: Any, f: dataclasses.Field) -> None:
    spec = f.metadata.get("range")
    if spec is None or value is None:
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_range(f"{key}[{i}]", item, f)
        return
    low, high, above, below = spec
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value!r} is not a finite number; it must be {_range_text(*spec)}")
    if (low is not None and (value < low or (above and value == low))) or (
        high is not None and (value > high or (below and value == high))
    ):
        raise ConfigError(f"{key}: {value!r} is out of range; it must be {_range_text(*spec)}")


class Checked:
    """Mixin for config dataclasses: choices and numeric ranges are checked whenever one is built (from YAML, from
    overrides or directly in Python), and errors name the dotted key (``section`` is the class's place in Config)."""

    section = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            key = f"{self.section}.{f.name}" if self.section else f.name
            value = getattr(self, f.name)
            _check_choices(key, value, f)
            _check_range(key, value, f)
        self.check()

    def check(self) -> None:
        """Checks that involve several fields; subclasses add theirs."""


def _check_choices(key: str, value: Any, f: dataclasses.Field) -> None:
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}{hint}")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def _check_value(key: str, value: Any, tp: Any) -> Any:
    """Return ``value`` converted to ``tp`` where that is lossless, else raise ConfigError naming the key."""
    origin = typing.get_origin(tp)
    if origin is Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} is not a {_type_name(tp)}")
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: {value!r} is not a list (expected {_type_name(tp)})")
        return [_check_value(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: {value!r} is not a bool (true/false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: {value!r} is not an int")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: {value!r} is not a float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: {value!r} is not a string")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: {value!r} is not a {_type_name(tp)}")
    return value
