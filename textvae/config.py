"""Dataclass configs: YAML in, dotted ``key=value`` overrides, validation with errors that name the key.

``Config(model=ModelConfig(encoder=..., decoder=..., latent=..., objective=...), data=DataConfig(...), train=TrainConfig(...))``
mirrors the YAML files one to one. An unknown key fails with the nearest valid one; a wrong type names the key,
the value and the type expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

import yaml

from .errors import ConfigError


def choice(default: Any, *choices: Any) -> Any:
    """A dataclass field whose value must be one of ``choices``."""
    return field(default=default, metadata={"choices": choices})


@dataclass
class TokenizerConfig:
    """Which tokenizer to train on the training split, and its size."""

    type: str = choice("word", "word", "bpe", "wordpiece", "sentencepiece", "pretrained")
    vocab_size: int = 10000  # the maximum for word-level vocabularies, the target for subword ones
    min_count: int = 1  # word-level: words seen fewer times become <unk>
    lowercase: bool = False
    path: Union[str, None] = None  # pretrained: a local Hugging Face checkpoint folder whose tokenizer is used as is


@dataclass
class EncoderConfig:
    """Sequence encoder: x -> h, which the latent turns into q(z|x). RNNs (lstm, gru) read the first block of keys,
    transformers also the second, pretrained encoders ``path`` and ``pooling``."""

    type: str = "lstm"  # a name in registry.ENCODERS: lstm, gru, transformer, pretrained
    embedding_size: int = 256
    hidden_size: int = 256  # transformer: the model width (embeddings are projected to it if embedding_size differs)
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0  # on embeddings and between layers (transformer: also attention and residual branches)
    # transformer
    num_heads: int = 4
    feedforward_size: int = 1024
    max_positions: int = 512
    positions: str = choice("learned", "learned", "sinusoidal")
    pooling: str = choice("mean", "mean", "first", "attention")  # how token states become h (also pretrained)
    # pretrained: a local Hugging Face checkpoint folder (config.json + weights), e.g. a downloaded bert-base-uncased
    path: Union[str, None] = None


@dataclass
class DecoderConfig:
    """Autoregressive decoder p(x|z); ``z_mode`` says where z enters, and each decoder type takes its own modes:
    RNNs init, concat, init+concat; transformer memory, prefix, embedding and their '+' combinations; pretrained
    memory, embedding, memory+embedding (Optimus)."""

    type: str = "lstm"  # a name in registry.DECODERS: lstm, gru, transformer, pretrained
    embedding_size: int = 256
    hidden_size: int = 256  # transformer: the model width
    num_layers: int = 1
    z_mode: str = choice(
        "init+concat", "init", "concat", "init+concat",
        "memory", "prefix", "embedding", "memory+prefix", "memory+embedding", "prefix+embedding",
        "memory+prefix+embedding",
    )
    word_dropout: float = 0.0  # fraction of input tokens (never the first) replaced by <unk> in training
    embedding_dropout: float = 0.0
    output_dropout: float = 0.0
    tie_embeddings: bool = False  # share input embedding and output projection (needs embedding_size == hidden_size)
    # transformer
    num_heads: int = 4
    feedforward_size: int = 1024
    dropout: float = 0.0  # attention weights, residual branches and the feed-forward hidden layer
    max_positions: int = 512
    positions: str = choice("learned", "learned", "sinusoidal")
    memory_slots: int = 1  # memory mode: z becomes this many vectors that cross-attention reads (pretrained: per layer)
    prefix_slots: int = 1  # prefix mode: z becomes this many embeddings placed before <bos>
    # pretrained: a local Hugging Face causal LM folder (config.json + weights), e.g. a downloaded gpt2
    path: Union[str, None] = None


@dataclass
class LatentConfig:
    """The bottleneck q(z|x) and its prior."""

    type: str = "gaussian"  # a name in registry.LATENTS: gaussian, gumbel, joint, none (a language model)
    size: int = 32  # Gaussian dimensions (gaussian, joint); unused by gumbel
    # categorical variables (gumbel, joint): one per entry, each with its own number of categories, e.g. [2, 3, 5, 10]
    category_sizes: list[int] = field(default_factory=list)
    # Gumbel-Softmax temperature at step t: max(temperature_min, temperature * exp(-temperature_anneal_rate * t))
    temperature: float = 1.0
    temperature_min: float = 0.5
    temperature_anneal_rate: float = 1e-4  # per step (Jang et al. use 1e-5..1e-4); 0 keeps it constant
    hard: bool = False  # straight-through: exact one-hot forward, relaxed gradients backward


@dataclass
class ObjectiveConfig:
    """ELBO terms and KL-weight schedule; every schedule is a pure function of the step (see objectives.py)."""

    beta: float = 1.0  # final weight on the KL term
    kl_schedule: str = choice("constant", "constant", "linear", "sigmoid", "cyclical")
    kl_start: float = 0.0  # linear: weight at step 0
    kl_warmup_steps: int = 10000  # linear: steps to reach beta; sigmoid: steps to reach 0.99*beta (midpoint at half)
    kl_cycles: int = 4  # cyclical: number of cycles over kl_total_steps
    kl_ramp_ratio: float = 0.5  # cyclical: fraction of each cycle spent rising (Fu et al. use 0.5)
    kl_total_steps: int = 40000  # cyclical: steps covered by the cycles; weight stays at beta afterwards
    free_bits: float = 0.0  # nats per latent dimension below which KL is not penalised (0 = off)
    capacity: float = 0.0  # capacity control target C_max in nats (0 = off): loss = rec + gamma*|KL - C(step)|
    capacity_steps: int = 10000  # steps over which C rises linearly from 0 to `capacity`
    capacity_gamma: float = 10.0
    # categorical variables (gumbel, joint latents) get their own weight or capacity, as in JointVAE (Dupont 2018);
    # None falls back to the setting above, which otherwise applies to the Gaussian part
    discrete_beta: Union[float, None] = None
    discrete_capacity: Union[float, None] = None  # capped at sum(log n), the most a set of categoricals can carry
    discrete_capacity_steps: Union[int, None] = None
    # beta-TCVAE (Chen et al. 2018), Gaussian latent only: KL = index-code MI + total correlation + dimension-wise KL,
    # weighted tc_alpha, beta (the KL weight above, with its schedule) and tc_gamma
    tcvae: bool = False
    tc_alpha: float = 1.0
    tc_gamma: float = 1.0
    tc_estimator: str = choice("mws", "mws", "mss")  # minibatch weighted / stratified sampling estimate of q(z)
    tc_dataset_size: int = 0  # N, the number of training sentences; 0 uses the batch size (moves the reported
    # MI/TC/dimension-wise split by constants; the gradients do not depend on it under mws)


@dataclass
class DialogueConfig:
    """Dialogue models (cvae, vhred): the context encoder, the prior network and the auxiliary losses."""

    condition: str = choice("context", "context", "label")  # cvae: condition on the dialogue context or a label
    context_hidden_size: int = 256  # the context RNN over utterance vectors (also the label embedding's size)
    prior_hidden_size: int = 100  # the prior network p(z|c): an MLP with one tanh layer of this width
    bow_weight: float = 1.0  # bag-of-words loss (Zhao et al. 2017): predict the response's words from [c, z]; 0 = off
    use_act: bool = False  # kgCVAE: predict the label y from [c, z] and condition the decoder on y's embedding
    act_label: str = choice("act", "act", "emotion")  # which annotation is y (and the label for condition=label)
    num_acts: int = 4  # classes of that annotation (DailyDialog: 4 acts, 7 emotions)
    act_embedding_size: int = 30
    act_weight: float = 1.0  # weight of the cross-entropy of y predicted from [c, z]


@dataclass
class ModelConfig:
    """A whole VAE: its type, pieces and objective."""

    model_type: str = "sentence_vae"  # a name in registry.MODELS
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)  # dialogue models only
    max_length: int = 64  # tokens per sentence, without <bos>/<eos>; also the generation limit
    overlong: str = choice("truncate", "truncate", "error")  # what encode()/tokenize() do with longer input


@dataclass
class DialogueDataConfig:
    """How dialogues become (context, response) examples; used by dialogue corpora only."""

    max_turns: int = 10  # previous utterances a context keeps (the most recent ones)
    # overlapping: every utterance after the first is a response (kgCVAE, DialogWAE); disjoint: windows of up to
    # max_turns + 1 turns that overlap only to cover a dialogue's end, for models of whole windows (vhred)
    windows: str = choice("overlapping", "overlapping", "disjoint")
    # DailyDialog: 93 of the 1,000 test dialogues (69 of the validation ones) also appear verbatim in train; True
    # drops them from test and validation (published kgCVAE / DialogWAE numbers keep them)
    drop_train_overlap: bool = False


@dataclass
class DataConfig:
    """Where sentences come from, how they are tokenized and batched."""

    corpus: str = "synthetic"  # a name in registry.CORPORA: synthetic, lines, hf; dialogue: dailydialog, dialogue_jsonl
    data_dir: Union[str, None] = None  # folder with train/valid/test files (lines, hf)
    text_column: str = "text"  # hf: the column holding the sentence
    synthetic_size: int = 24000  # synthetic: number of sentences over all splits
    synthetic_seed: int = 0  # synthetic: which sentences; fixed apart from the run's seed so runs share data
    max_length: Union[int, None] = None  # None: the model's max_length
    overlong: str = choice("drop", "drop", "truncate", "error")
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    batch_size: int = 32
    eval_batch_size: int = 128
    bucket: bool = True  # length-bucketed batches, so padding stays small
    dialogue: DialogueDataConfig = field(default_factory=DialogueDataConfig)


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping for the trainer."""

    output_dir: str = "runs/default"
    max_steps: int = 2000
    learning_rate: float = 1e-3
    optimizer: str = choice("adam", "adam", "adamw", "sgd")
    weight_decay: float = 0.0
    lr_schedule: str = choice("constant", "constant", "linear", "cosine")
    warmup_steps: int = 0
    grad_clip: float = 5.0
    grad_accum_steps: int = 1
    mixed_precision: str = choice("no", "no", "fp16", "bf16")
    # None: about 10 validations and checkpoints per run, max(1, max_steps // 10)
    eval_every: Union[int, None] = None
    checkpoint_every: Union[int, None] = None
    keep_checkpoints: int = 2
    log_every: int = 50
    # a step whose loss or gradient norm is NaN or infinite is skipped (logged as skipped_steps); this many in a row
    # stop the run with an error (1: stop at the first)
    max_nonfinite_steps: int = 5
    # start from the weights of a model folder (e.g. an autoencoder, for Li et al. 2019's pretraining) instead of a
    # fresh initialisation; init_modules keeps only the named top-level modules (e.g. [encoder]), [] takes all
    init_from: Union[str, None] = None
    init_modules: list[str] = field(default_factory=list)
    # on a CPU, keep freed memory in the process (glibc mallopt) instead of returning it to the kernel after every
    # step: the step's (tokens x vocabulary) tensors then reuse mapped pages (see training.host_memory)
    keep_host_memory: bool = True
    # threads per process on a CPU; 0: the machine's physical cores shared among its processes (accelerate launch
    # alone sets OMP_NUM_THREADS=1 for a single CPU process, half of a 2-core machine)
    cpu_threads: int = 0


@dataclass
class Config:
    """Everything one run needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        return from_dict(cls, data)


# ---------------------------------------------------------------- building from dicts, with checks


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


def _unknown_key(key: str, valid: Iterable[str]) -> ConfigError:
    valid = sorted(valid)
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, valid, n=1)
    parent = key.rsplit(".", 1)[0] + "." if "." in key else ""
    hint = f"; did you mean '{parent}{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint} (valid here: {', '.join(valid)})")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict, checking every key and value."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = _field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise _unknown_key(full, fields)
        tp = hints[key]
        if _is_dataclass_type(tp):
            kwargs[key] = from_dict(tp, value, prefix=full + ".")
        else:
            kwargs[key] = _check_value(full, value, tp)
            _check_choices(full, kwargs[key], fields[key])
    return cls(**kwargs)


def _check_choices(key: str, value: Any, f: dataclasses.Field) -> None:
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}{hint}")


def apply_overrides(data: dict, overrides: Iterable[str], cls: type = Config) -> dict:
    """Apply ``a.b.c=value`` strings to a nested dict; values parse as YAML scalars (``1e-3``, ``true``, ``[2, 3]``)."""
    data = json.loads(json.dumps(data))  # a deep copy that also rejects non-plain values
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. model.latent.size=32)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: cannot parse value {raw!r}: {exc}") from None
        if isinstance(value, str) and cls is not None:
            value = raw  # keep strings exactly as typed
        parts = key.split(".")
        node, node_cls = data, cls
        for depth, part in enumerate(parts):
            hints = _field_types(node_cls)
            if part not in hints:
                raise _unknown_key(".".join(parts[: depth + 1]), hints)
            tp = hints[part]
            if depth == len(parts) - 1:
                if _is_dataclass_type(tp):
                    raise ConfigError(f"override {key!r} names a section; set one of its keys, e.g. {key}.{next(iter(_field_types(tp)))}=...")
                node[part] = value
            else:
                if not _is_dataclass_type(tp):
                    raise ConfigError(f"override {key!r}: {'.'.join(parts[: depth + 1])} is not a section")
                node = node.setdefault(part, {})
                if node is None:
                    node = data[part] = {}
                node_cls = tp
    return data


def load_config(path: "str | Path | None" = None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply dotted overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections (model, data, train, seed)")
    data = apply_overrides(data, overrides)
    return Config.from_dict(data)


def save_config(config: Config, path: "str | Path") -> None:
    """Write a config as YAML that ``load_config`` reads back to an equal config."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
