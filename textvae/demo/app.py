"""The demo's endpoints without a server: ``DemoApp.handle(method, path, body)`` answers (status, JSON payload) for
``/api/info | interpolate | map | sample | reconstruct | respond | traverse`` over a loaded model, through its
public API (encode, decode, sample, respond) and ``evaluation``'s homotopy and traversal functions. Requests are
checked before the model runs (400 with ``{"error": message}``), bounded by ``Limits``, and run one at a time."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import InputError, LengthWarning, TextVAEError
from ..registry import unknown_name_message

log = logging.getLogger("textvae.demo")

STRATEGIES = ("greedy", "sample", "beam")
METHODS = {"linear": "linear", "spherical": "spherical", "lerp": "linear", "slerp": "spherical"}
MAP_CACHE_VERSION = 1


@dataclass(frozen=True)
class Limits:
    """Bounds on one request's work: path steps, sentences decoded, characters per text, turns of a context, the
    request body's bytes, and seconds a request waits for the model while another one runs."""

    max_steps: int = 50
    max_samples: int = 50
    max_chars: int = 500
    max_turns: int = 10
    max_body_bytes: int = 64 * 1024
    busy_timeout: float = 120.0


@dataclass(frozen=True)
class Decoding:
    """The server's decoding settings (``textvae demo``'s decoding flags); a request chooses the strategy and the
    temperature, the rest apply as given."""

    strategy: str = "greedy"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    beam_size: int = 4
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    max_length: Optional[int] = None

    def kwargs(self, strategy: str, temperature: float) -> dict:
        """``generate`` keyword arguments for ``strategy``: sampling and beam settings only where they apply."""
        kwargs = {"max_length": self.max_length, "repetition_penalty": self.repetition_penalty,
                  "no_repeat_ngram_size": self.no_repeat_ngram_size}
        if strategy == "sample":
            kwargs |= {"temperature": temperature, "top_k": self.top_k, "top_p": self.top_p}
        elif strategy == "beam":
            kwargs |= {"beam_size": self.beam_size, "length_penalty": self.length_penalty}
        return kwargs


class RequestError(InputError):
    """A request the demo cannot serve as asked; ``status`` is its HTTP status (400 unless said otherwise)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- request bodies

REQUIRED = object()  # a key without a default


class Body:
    """A request's JSON object, read key by key with checks; ``done()`` rejects the keys no reader asked for."""

    def __init__(self, endpoint: str, raw: bytes, limits: Limits) -> None:
        self.endpoint, self.limits, self.read = endpoint, limits, set()
        try:
            data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RequestError(f"the request body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RequestError(f"the request body must be a JSON object, got {type(data).__name__}")
        self.data = data

    def _get(self, key: str, default: Any) -> Any:
        self.read.add(key)
        value = self.data.get(key, default)
        if value is REQUIRED:
            raise RequestError(f"{key!r} is missing")
        return value

    def text(self, key: str) -> str:
        """A non-empty string of at most ``max_chars`` characters, stripped."""
        return self._text(key, self._get(key, REQUIRED))

    def _text(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise RequestError(f"{key!r} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise RequestError(f"{key!r} is empty: type a sentence")
        if len(value) > self.limits.max_chars:
            raise RequestError(f"{key!r} has {len(value)} characters, more than the limit of {self.limits.max_chars}")
        return value.strip()

    def turns(self, key: str) -> list[str]:
        """A context: a list of turns (oldest first), or one string with a turn per line."""
        value = self._get(key, REQUIRED)
        if isinstance(value, str):
            value = [line for line in value.splitlines() if line.strip()] or [value]
        if not isinstance(value, list) or not value:
            raise RequestError(f"{key!r} must be a non-empty list of turns (or a string, one turn per line)")
        if len(value) > self.limits.max_turns:
            raise RequestError(f"{key!r} has {len(value)} turns, more than the limit of {self.limits.max_turns}")
        return [self._text(f"{key}[{i}]", turn) for i, turn in enumerate(value)]

    def integer(self, key: str, default: Any, low: int, high: int) -> int:
        """An integer in [low, high] (a bool or a float is refused)."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"{key!r} must be an integer, got {value!r}")
        if not low <= value <= high:
            raise RequestError(f"{key!r} must be between {low} and {high}, got {value}")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        """A number in (low, high]."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(f"{key!r} must be a number, got {value!r}")
        if not low < value <= high:
            raise RequestError(f"{key!r} must be above {low:g} and at most {high:g}, got {value}")
        return float(value)

    def choice(self, key: str, default: str, choices: "Sequence[str] | dict") -> str:
        """One of ``choices`` (a dict maps aliases to names), with the nearest valid name when it is not."""
        value = self._get(key, default)
        if not isinstance(value, str) or value not in choices:
            raise RequestError(unknown_name_message(key, value, list(choices)))
        return choices[value] if isinstance(choices, dict) else value

    def done(self) -> None:
        """Refuse the request when it holds a key no reader asked for, naming the nearest valid one."""
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise RequestError(f"{self.endpoint}: {unknown_name_message('key', unknown[0], sorted(self.read))}")



# ---------------------------------------------------------------- the latent map


@dataclass
class LatentMap:
    """Posterior means of a corpus's sentences projected on their first two principal components; ``project``
    puts other codes (a path) on the same plane."""

    sentences: list[str]
    points: np.ndarray  # (N, 2)
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (2, D)
    explained: list[float]
    source: str
    cache: Optional[str] = None

    def project(self, z: "torch.Tensor | np.ndarray") -> np.ndarray:
        """Codes (K, D) -> (K, 2) on the map's plane."""
        return (np.asarray(torch.as_tensor(z).double().cpu()) - self.mean) @ self.components.T

    def payload(self) -> dict:
        """The map as ``/api/map`` answers it."""
        return {"sentences": self.sentences, "points": _rounded(self.points), "explained": self.explained,
                "source": self.source, "cache": self.cache}

    @classmethod
    def build(cls, model, sentences: Sequence[str], source: str) -> "LatentMap":
        """Encode ``sentences`` (posterior means) and fit the plane."""
        from ..evaluation.plots import pca_basis

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LengthWarning)  # a long corpus sentence is truncated, as in training
            codes = model.encode(list(sentences)).cpu()
        mean, components, ratio = pca_basis(codes)
        points = (codes.double().numpy() - mean) @ components.T
        return cls(list(sentences), points, mean, components, [float(r) for r in ratio], source)

    def save(self, path: Path, key: dict) -> None:
        """Write the map and the ``key`` it was built for as JSON (atomically: a temporary file renamed)."""
        data = {"version": MAP_CACHE_VERSION, "key": key, "source": self.source, "sentences": self.sentences,
                "points": self.points.tolist(), "mean": self.mean.tolist(), "components": self.components.tolist(),
                "explained": self.explained}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, key: dict) -> Optional["LatentMap"]:
        """The map cached at ``path`` when it was built for ``key``; None when missing, stale or unreadable."""
        try:
            data = json.loads(path.read_text())
            if data.get("version") != MAP_CACHE_VERSION or data.get("key") != key:
                return None
            return cls(data["sentences"], np.asarray(data["points"], dtype=np.float64),
                       np.asarray(data["mean"], dtype=np.float64), np.asarray(data["components"], dtype=np.float64),
                       list(data["explained"]), data["source"], str(path))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def user_cache_dir() -> Path:
    """Where maps of bare model folders go: ``$XDG_CACHE_HOME/textvae/demo`` (``~/.cache/textvae/demo``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "textvae" / "demo"


def map_cache_path(model_folder: Path) -> Path:
    """``<run>/demo-map-<name>.json`` for a model folder inside a training run (a ``config.yaml`` beside it); for
    a bare model folder, a file named by its resolved path in ``user_cache_dir()``, so nothing is written beside
    a folder that may be shared or read-only."""
    model_folder = Path(model_folder)
    if (model_folder.parent / "config.yaml").is_file():
        return model_folder.parent / f"demo-map-{model_folder.name}.json"
    digest = hashlib.sha256(str(model_folder.resolve()).encode()).hexdigest()[:16]
    return user_cache_dir() / f"map-{model_folder.resolve().name}-{digest}.json"


def model_fingerprint(model_folder: Path) -> str:
    """A hash of the folder's config and weights: a cached map belongs to these exact weights."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        path = Path(model_folder) / name
        if path.is_file():
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def cached_latent_map(model, model_folder: Path, sentences: Callable[[], Sequence[str]], source: str,
                      key: dict, cache_path: Optional[Path] = None) -> LatentMap:
    """The map of ``sentences()`` (called only when no cache fits), read from or written to ``cache_path``
    (default ``map_cache_path``); a run folder that cannot be written falls back to ``user_cache_dir()``."""
    path = Path(cache_path) if cache_path is not None else map_cache_path(model_folder)
    key = {"model": model_fingerprint(model_folder), **key}
    found = LatentMap.load(path, key)
    if found is not None:
        return found
    latent_map = LatentMap.build(model, sentences(), source)
    for target in (path, user_cache_dir() / path.name):
        try:
            latent_map.save(target, key)
        except OSError as exc:
            log.warning("cannot write the map cache %s: %s", target, exc)
            continue
        latent_map.cache = str(target)
        break
    return latent_map


# ---------------------------------------------------------------- the endpoints


def _rounded(values: "np.ndarray | torch.Tensor", digits: int = 4) -> list:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def changed_steps(sentences: Sequence[str]) -> list[bool]:
    """Per step, whether its sentence differs from the step before (the first step: False)."""
    return [i > 0 and s != sentences[i - 1] for i, s in enumerate(sentences)]


@dataclass
class DemoApp:
    """A loaded model behind the demo's JSON endpoints. ``handle`` never raises: a bad request is 400 with a
    message, anything unexpected 500 with a short message and the traceback in the log."""

    model: Any
    folder: str = ""
    decoding: Decoding = field(default_factory=Decoding)
    limits: Limits = field(default_factory=Limits)
    latent_map: Optional[LatentMap] = None
    map_note: str = "no map: start the demo with validation sentences to draw one"
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    GET = ("info", "map")
    POST = ("interpolate", "sample", "reconstruct", "respond", "traverse")

    @property
    def dialogue(self) -> bool:
        return hasattr(self.model, "respond")

    @property
    def category_sizes(self) -> list[int]:
        return list(getattr(self.model.latent, "category_sizes", None) or [])

    def operations(self) -> list[str]:
        """The endpoints this model serves (besides ``info``)."""
        if self.dialogue:
            return ["respond"]
        ops = ["interpolate", "sample", "reconstruct"]
        if self.latent_map is not None:
            ops.append("map")
        if self.category_sizes:
            ops.append("traverse")
        return ops

    def handle(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
        """(HTTP status, JSON payload) for a request to ``/api/<name>``."""
        name = path.removeprefix("/api/").strip("/")
        try:
            if name not in self.GET + self.POST:
                raise RequestError(unknown_name_message("endpoint", name, self.GET + self.POST), status=404)
            if (method == "GET") != (name in self.GET):
                raise RequestError(f"/api/{name} takes {'GET' if name in self.GET else 'POST'}, not {method}", 405)
            if len(body) > self.limits.max_body_bytes:
                raise RequestError(f"the request body has {len(body)} bytes, more than {self.limits.max_body_bytes}", 413)
            if name == "info":
                return 200, self.info()
            if name not in self.operations():
                raise RequestError(self._unsupported(name))
            request = Body(f"/api/{name}", body, self.limits)
            run = getattr(self, f"_{name}")(request)  # checks every field, then returns the model work to run
            request.done()
            if not self.lock.acquire(timeout=self.limits.busy_timeout):
                raise RequestError("the model is busy with another request; try again", status=503)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", LengthWarning)
                    payload = run()
            finally:
                self.lock.release()
            notes = sorted({str(w.message) for w in caught if issubclass(w.category, LengthWarning)})
            return 200, payload | ({"warnings": notes} if notes else {})
        except RequestError as exc:
            return exc.status, {"error": str(exc)}
        except TextVAEError as exc:  # the model's own checks (a sentence with no known tokens, too long)
            return 400, {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001  (a bug: the page gets one line, the log the traceback)
            log.exception("error in %s %s", method, path)
            return 500, {"error": f"internal error ({type(exc).__name__}); the server's log has the details"}

    def _unsupported(self, name: str) -> str:
        if name == "respond":
            return "this model is not a dialogue model: /api/respond needs a cvae or vhred model"
        if name == "traverse":
            return "this model has no discrete latent variables (latent.category_sizes): nothing to traverse"
        if name == "map":
            return self.map_note
        return (f"a dialogue model ({self.model.config.model_type}) samples responses to a context: use "
                f"/api/respond, not /api/{name}")

    def info(self) -> dict:
        """``/api/info``: the model, the operations it supports, the limits and the decoding defaults."""
        config = self.model.config
        info = {
            "model_type": config.model_type, "folder": self.folder, "operations": self.operations(),
            "latent": {"type": config.latent.type, "code_size": self.model.latent.code_size,
                       "category_sizes": self.category_sizes},
            "max_length": config.max_length, "limits": dataclasses.asdict(self.limits),
            "decoding": dataclasses.asdict(self.decoding), "strategies": list(STRATEGIES),
            "methods": ["linear", "spherical"],
            "map": ({"count": len(self.latent_map.sentences), "source": self.latent_map.source,
                     "cache": self.latent_map.cache} if self.latent_map is not None else {"note": self.map_note}),
        }
        if self.dialogue:
            info["dialogue"] = {"condition": config.dialogue.condition, "num_labels": config.dialogue.num_acts}
        return info

    # each reader checks its request and returns the work, which ``handle`` runs holding the lock

    def _decoding(self, request: Body) -> tuple[str, dict, int]:
        """The request's strategy, its ``generate`` kwargs (with a seeded generator) and the seed."""
        strategy = request.choice("strategy", self.decoding.strategy, STRATEGIES)
        temperature = request.number("temperature", self.decoding.temperature, 0.0, 10.0)
        seed = request.integer("seed", 0, 0, 2**31 - 1)
        return strategy, self.decoding.kwargs(strategy, temperature), seed

    def _count(self, request: Body, key: str = "n", default: int = 10) -> int:
        return request.integer(key, min(default, self.limits.max_samples), 1, self.limits.max_samples)

    def _interpolate(self, request: Body) -> Callable[[], dict]:
        from ..evaluation.homotopy import pick_grammar, sentence_path

        a, b = request.text("a"), request.text("b")
        steps = request.integer("steps", 8, 2, self.limits.max_steps)
        method = request.choice("method", "linear", METHODS)
        strategy, kwargs, seed = self._decoding(request)

        def run() -> dict:
            generator = torch.Generator().manual_seed(seed)
            path = sentence_path(self.model, a, b, steps, method, strategy, pick_grammar("auto", [a, b]),
                                 generator=generator, **kwargs)
            payload = {"a": a, "b": b, "method": method, "strategy": strategy, "t": _rounded(path.t),
                       "path": path.sentences, "changed": changed_steps(path.sentences), "metrics": path.metrics}
            if self.latent_map is not None:
                payload["xy"] = _rounded(self.latent_map.project(path.z))
            return payload

        return run

    def _map(self, request: Body) -> Callable[[], dict]:
        return self.latent_map.payload

    def _sample(self, request: Body) -> Callable[[], dict]:
        n = self._count(request)
        strategy, kwargs, seed = self._decoding(request)
        return lambda: {"samples": self.model.sample(n, strategy=strategy, seed=seed, **kwargs)}

    def _reconstruct(self, request: Body) -> Callable[[], dict]:
        sentence = request.text("sentence")
        n = self._count(request, default=5)
        strategy, kwargs, seed = self._decoding(request)

        def run() -> dict:
            torch.manual_seed(seed)  # posterior samples draw from the global generator (the lock keeps it ours)
            z = self.model.encode([sentence] * (n + 1), sample=True)
            z[0] = self.model.encode([sentence])[0]
            decoded = self.model.decode(z, strategy=strategy, generator=torch.Generator().manual_seed(seed), **kwargs)
            return {"sentence": sentence, "mean": decoded[0], "samples": decoded[1:]}

        return run

    def _respond(self, request: Body) -> Callable[[], dict]:
        d = self.model.config.dialogue
        if d.condition == "label":
            label = request.integer("label", REQUIRED, 0, d.num_acts - 1)
            contexts, labels = None, [label]
        else:
            contexts, labels = [request.turns("context")], None
        n = self._count(request, default=5)
        strategy, kwargs, seed = self._decoding(request)

        def run() -> dict:
            responses = self.model.respond(contexts, num_samples=n, strategy=strategy, seed=seed, labels=labels,
                                           **kwargs)[0]
            return {"context": contexts[0] if contexts else None, "label": labels[0] if labels else None,
                    "responses": responses}

        return run

    def _traverse(self, request: Body) -> Callable[[], dict]:
        from ..evaluation.disentanglement.traversals import traverse

        sentence = request.text("sentence")
        sizes = self.category_sizes
        variable = request.integer("variable", 0, 0, len(sizes) - 1)
        strategy, kwargs, seed = self._decoding(request)
        first = self.model.latent.code_size - sum(sizes)  # traverse counts Gaussian dimensions first

        def run() -> dict:
            generator = torch.Generator().manual_seed(seed)
            offset = first + sum(sizes[:variable])
            code = self.model.encode([sentence])[0, offset : offset + sizes[variable]]
            pairs = traverse(self.model, sentence, first + variable, strategy=strategy, generator=generator, **kwargs)
            return {"sentence": sentence, "variable": variable, "category": int(code.argmax()),
                    "sentences": [text for _, text in pairs]}

        return run
