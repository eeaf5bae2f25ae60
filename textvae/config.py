"""Dataclass configs: YAML in, dotted ``key=value`` overrides, validation with errors that name the key.

``Config(model=ModelConfig(encoder=..., decoder=..., latent=..., objective=...), data=DataConfig(...), train=TrainConfig(...))``
mirrors the YAML files one to one. An unknown key fails with the nearest valid one; a wrong type names the key,
the value and the type expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

import yaml

from .checked import Checked, bounded, choice, _check_value, _field_types, _is_dataclass_type  # noqa: F401
from .config_migration import MOVED_KEYS, migrate as _migrate
from .errors import ConfigError


@dataclass
class TokenizerConfig(Checked):
    """Which tokenizer to train on the training split, and its size."""

    section = "data.tokenizer"

    type: str = choice("word", "word", "bpe", "wordpiece", "sentencepiece", "pretrained")
    vocab_size: int = bounded(10000, 1)  # the maximum for word-level vocabularies, the target for subword ones
    min_count: int = bounded(1, 1)  # word-level: words seen fewer times become <unk>
    lowercase: bool = False
    path: Union[str, None] = None  # pretrained: a local Hugging Face checkpoint folder whose tokenizer is used as is
    # a corpus's own unknown-word token (Yahoo's and Yelp's _UNK): read as <unk> by every type, never learned
    unk_token: Union[str, None] = None
    # word: split punctuation and clitics off words, PTB style (don't -> do n't, umbrella. -> umbrella .); false:
    # split on whitespace only. Already tokenized text (PTB) gives the same words either way
    pretokenize: bool = True
    numbers: str = choice("keep", "keep", "ptb")  # word: ptb writes every number (42, 1,000, 3.5) as PTB's N
    # word: decode re-attaches punctuation and clitics ("always": Don't go.) or joins words with spaces ("never":
    # Do n't go .); "auto" does what the training text does (raw text: always; tokenized text such as PTB: never)
    detokenize: str = choice("auto", "auto", "always", "never")
    # bpe: byte-level BPE (GPT-2 style); sentencepiece: byte fallback. Both never give <unk> and decode any text
    # exactly. false: whitespace-split BPE with ## continuations, SentencePiece without bytes (unseen characters
    # become <unk>); wordpiece always works that way
    byte_level: bool = True


@dataclass
class EncoderConfig(Checked):
    """Sequence encoder: x -> h, which the latent turns into q(z|x). RNNs (lstm, gru) read the first block of keys,
    transformers also the second, pretrained encoders ``path`` and ``pooling``."""

    section = "model.encoder"

    type: str = "lstm"  # a name in registry.ENCODERS: lstm, gru, transformer, pretrained
    embedding_size: int = bounded(256, 1)
    hidden_size: int = bounded(256, 1)  # transformer: the model width (embeddings are projected to it if embedding_size differs)
    num_layers: int = bounded(1, 1)
    bidirectional: bool = False
    dropout: float = bounded(0.0, 0, 1, below=True)  # on embeddings and between layers (transformer: also attention and residual branches)
    # transformer
    num_heads: int = bounded(4, 1)
    feedforward_size: int = bounded(1024, 1)
    max_positions: int = bounded(512, 1)
    positions: str = choice("learned", "learned", "sinusoidal")
    pooling: str = choice("mean", "mean", "first", "attention")  # how token states become h (also pretrained)
    # pretrained: a local Hugging Face checkpoint folder (config.json + weights), e.g. a downloaded bert-base-uncased
    path: Union[str, None] = None


@dataclass
class DecoderConfig(Checked):
    """Autoregressive decoder p(x|z); ``z_mode`` says where z enters, and each decoder type takes its own modes:
    RNNs init, concat, init+concat; transformer memory, prefix, embedding and their '+' combinations; pretrained
    memory, embedding, memory+embedding (Optimus)."""

    section = "model.decoder"

    type: str = "lstm"  # a name in registry.DECODERS: lstm, gru, transformer, pretrained
    embedding_size: int = bounded(256, 1)
    hidden_size: int = bounded(256, 1)  # transformer: the model width
    num_layers: int = bounded(1, 1)
    z_mode: str = choice(
        "init+concat", "init", "concat", "init+concat",
        "memory", "prefix", "embedding", "memory+prefix", "memory+embedding", "prefix+embedding",
        "memory+prefix+embedding",
    )
    # fraction of input tokens (never the first) replaced by <unk> in training; 1 leaves the decoder no words (Bowman
    # et al.'s inputless decoder)
    word_dropout: float = bounded(0.0, 0, 1)
    embedding_dropout: float = bounded(0.0, 0, 1, below=True)
    output_dropout: float = bounded(0.0, 0, 1, below=True)
    tie_embeddings: bool = False  # share input embedding and output projection (needs embedding_size == hidden_size)
    output_bias: bool = True  # lstm/gru/transformer: a bias on the output layer (He et al.'s and Li et al.'s has none)
    # transformer
    num_heads: int = bounded(4, 1)
    feedforward_size: int = bounded(1024, 1)
    dropout: float = bounded(0.0, 0, 1, below=True)  # attention weights, residual branches and the feed-forward hidden layer
    max_positions: int = bounded(512, 1)
    positions: str = choice("learned", "learned", "sinusoidal")
    memory_slots: int = bounded(1, 1)  # memory mode: z becomes this many vectors that cross-attention reads (pretrained: per layer)
    prefix_slots: int = bounded(1, 1)  # prefix mode: z becomes this many embeddings placed before <bos>
    # pretrained: a local Hugging Face causal LM folder (config.json + weights), e.g. a downloaded gpt2
    path: Union[str, None] = None


@dataclass
class LatentConfig(Checked):
    """The bottleneck q(z|x) and its prior."""

    section = "model.latent"

    type: str = "gaussian"  # a name in registry.LATENTS: gaussian, gumbel, joint, none (a language model)
    size: int = bounded(32, 1)  # Gaussian dimensions (gaussian, joint); unused by gumbel
    # categorical variables (gumbel, joint): one per entry, each with its own number of categories, e.g. [2, 3, 5, 10]
    category_sizes: list[int] = bounded(list, 2)
    # Gumbel-Softmax temperature at step t: max(temperature_min, temperature * exp(-temperature_anneal_rate * t))
    temperature: float = bounded(1.0, 0, above=True)
    temperature_min: float = bounded(0.5, 0, above=True)
    temperature_anneal_rate: float = bounded(1e-4, 0)  # per step (Jang et al. use 1e-5..1e-4); 0 keeps it constant
    hard: bool = False  # straight-through: exact one-hot forward, relaxed gradients backward


@dataclass
class ObjectiveConfig(Checked):
    """ELBO terms and KL-weight schedule; every schedule is a pure function of the step (see objectives.py)."""

    section = "model.objective"

    beta: float = bounded(1.0, 0)  # final weight on the KL term
    kl_schedule: str = choice("constant", "constant", "linear", "sigmoid", "cyclical")
    kl_start: float = bounded(0.0, 0)  # linear: weight at step 0
    kl_warmup_steps: int = bounded(10000, 1)  # linear: steps to reach beta; sigmoid: steps to reach 0.99*beta (midpoint at half)
    kl_cycles: int = bounded(4, 1)  # cyclical: number of cycles over kl_total_steps
    kl_ramp_ratio: float = bounded(0.5, 0, 1, above=True)  # cyclical: fraction of each cycle spent rising (Fu et al. use 0.5)
    kl_total_steps: int = bounded(40000, 1)  # cyclical: steps covered by the cycles; weight stays at beta afterwards
    free_bits: float = bounded(0.0, 0)  # nats per latent dimension below which KL is not penalised (0 = off)
    capacity: float = bounded(0.0, 0)  # capacity control target C_max in nats (0 = off): loss = rec + gamma*|KL - C(step)|
    capacity_steps: int = bounded(10000, 1)  # steps over which C rises linearly from 0 to `capacity`
    capacity_gamma: float = bounded(10.0, 0)
    # categorical variables (gumbel, joint latents) get their own weight or capacity, as in JointVAE (Dupont 2018);
    # None falls back to the setting above, which otherwise applies to the Gaussian part
    discrete_beta: Union[float, None] = bounded(None, 0)
    discrete_capacity: Union[float, None] = bounded(None, 0)  # capped at sum(log n), the most a set of categoricals can carry
    discrete_capacity_steps: Union[int, None] = bounded(None, 1)
    # beta-TCVAE (Chen et al. 2018), Gaussian latent only: KL = index-code MI + total correlation + dimension-wise KL,
    # weighted tc_alpha, beta (the KL weight above, with its schedule) and tc_gamma
    tcvae: bool = False
    tc_alpha: float = bounded(1.0, 0)
    tc_gamma: float = bounded(1.0, 0)
    tc_estimator: str = choice("mws", "mws", "mss")  # minibatch weighted / stratified sampling estimate of q(z)
    tc_dataset_size: int = bounded(0, 0)  # mss: N, the number of training sentences; 0 uses the batch size (mws does not
    # read it: its weights 1/M sum to 1; Chen et al.'s 1/(NM) only shift the reported terms by multiples of log N)

    def check(self) -> None:
        if self.free_bits > 0 and self.capacity > 0:  # capacity control replaces the hinged KL, free bits would do nothing
            raise ConfigError(
                f"model.objective.free_bits ({self.free_bits}) and model.objective.capacity ({self.capacity}) exclude "
                "each other: capacity control penalises |KL - C| and ignores free bits; set one of them to 0"
            )


@dataclass
class DialogueConfig(Checked):
    """Dialogue models (cvae, vhred): the context encoder, the prior network and the auxiliary losses."""

    section = "model.dialogue"

    condition: str = choice("context", "context", "label")  # cvae: condition on the dialogue context or a label
    context_hidden_size: int = bounded(256, 1)  # the context RNN over utterance vectors (also the label embedding's size)
    prior_hidden_size: int = bounded(100, 1)  # the prior network p(z|c): an MLP with one tanh layer of this width
    bow_weight: float = bounded(1.0, 0)  # bag-of-words loss (Zhao et al. 2017): predict the response's words from [c, z]; 0 = off
    use_act: bool = False  # kgCVAE: predict the label y from [c, z] and condition the decoder on y's embedding
    act_label: str = choice("act", "act", "emotion")  # which annotation is y (and the label for condition=label)
    num_acts: int = bounded(4, 1)  # classes of that annotation (DailyDialog: 4 acts, 7 emotions)
    act_embedding_size: int = bounded(30, 1)
    act_weight: float = bounded(1.0, 0)  # weight of the cross-entropy of y predicted from [c, z]


@dataclass
class NegotiationConfig(Checked):
    """Negotiation agents (negotiation_word, larl): the goal encoder, the selection head and LaRL's objective. The
    context GRU is ``model.dialogue.context_hidden_size`` wide."""

    section = "model.negotiation"

    goal_embedding_size: int = bounded(64, 1)  # per count and per value
    goal_size: int = bounded(64, 1)  # the goal vector every turn of the context GRU and the selection head read
    # the selection module: attention (Lewis et al.'s: a bidirectional GRU over every word of the dialogue, attention,
    # a tanh layer) or head (an MLP over the context state after the closing turn; models saved before 'selection'
    # existed have it)
    selection: str = choice("attention", "attention", "head")
    selection_hidden_size: int = bounded(128, 1)  # the tanh layer before the per-item classifiers
    selection_embedding_size: int = bounded(128, 1)  # attention: its own word embedding
    selection_attention_size: int = bounded(128, 1)  # attention: its GRU's size per direction
    selection_weight: float = bounded(0.5, 0)  # weight of the selection cross-entropy beside the response NLL
    # larl: lite = rec + beta * KL(p(z|c) || uniform or N(0, I)), the policy p(z|c) doubling as the posterior; full =
    # rec + beta * KL(q(z|x,c) || p(z|c)) with a recognition network q that reads the response
    elbo: str = choice("lite", "lite", "full")


@dataclass
class ImageConfig(Checked):
    """Image models (image_vae): the shape (None: the data's), network (conv64: disentanglement_lib's 64 x 64 one; small:
    conv 32-64 for 8 x 8 to 28 x 28; auto picks by size) and pixel likelihood (gaussian_std None: learned)."""

    section = "model.image"
    channels: Union[int, None] = bounded(None, 1)
    height: Union[int, None] = bounded(None, 1)
    width: Union[int, None] = bounded(None, 1)
    architecture: str = choice("auto", "auto", "conv64", "small")
    hidden_size: int = bounded(256, 1)  # the dense layer between the conv stack and the latent (and back)
    likelihood: str = choice("bernoulli", "bernoulli", "gaussian")  # gaussian: N(sigmoid(output), std^2)
    gaussian_std: Union[float, None] = bounded(None, 0, above=True)


@dataclass
class ModelConfig(Checked):
    """A whole VAE: its type, pieces and objective."""

    section = "model"

    model_type: str = "sentence_vae"  # a name in registry.MODELS
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)  # dialogue models only
    negotiation: NegotiationConfig = field(default_factory=NegotiationConfig)  # negotiation agents only
    image: ImageConfig = field(default_factory=ImageConfig)  # image models only
    # tokens per sentence, without <bos>/<eos>, in training, evaluation and the API alike; also the generation
    # limit. None: derived from the training split (its 99.9th percentile length) when the data is prepared
    max_length: Union[int, None] = bounded(None, 1)
    # what happens to longer sentences, everywhere: truncate them; drop them from corpus splits (the API, which must
    # answer for every sentence it is given, then raises InputError); or raise an error naming the sentence
    overlong: str = choice("truncate", "truncate", "drop", "error")
    # initialisation of a fresh model: each module's own (default), or every parameter of the model (encoder,
    # latent heads, decoder, output layer; weights and biases) uniform in +-init_range and every embedding in
    # +-embedding_init_range (padding rows stay 0), as He et al. 2019 and Li et al. 2019 do. uniform is for RNN
    # (lstm, gru) encoders and decoders: it would flatten a transformer's LayerNorm gains and erase pretrained weights
    init: str = choice("default", "default", "uniform")
    init_range: float = bounded(0.01, 0, above=True)
    embedding_init_range: float = bounded(0.1, 0, above=True)

    def check(self) -> None:
        if self.init != "uniform":
            return
        if self.model_type == "image_vae":  # its encoder and decoder are convolutional, whatever the RNN types say
            raise ConfigError("model.init: uniform is for RNN encoders and decoders (lstm, gru), but model.model_type "
                              "'image_vae' builds convolutional ones; use model.init: default")
        parts = [("model.decoder.type", self.decoder.type)]
        if self.latent.type != "none":  # a language model builds no encoder
            parts.insert(0, ("model.encoder.type", self.encoder.type))
        for key, kind in parts:
            if kind not in ("lstm", "gru"):
                raise ConfigError(f"model.init: uniform is for RNN encoders and decoders (lstm, gru), but {key} is "
                                  f"{kind!r}; use model.init: default")


@dataclass
class DialogueDataConfig(Checked):
    """How dialogues become (context, response) examples; used by dialogue corpora only."""

    section = "data.dialogue"

    max_turns: int = bounded(10, 1)  # previous utterances a context keeps (the most recent ones)
    # overlapping: every utterance after the first is a response (kgCVAE, DialogWAE); disjoint: windows of up to
    # max_turns + 1 turns for models of whole windows (vhred); the last ends at the dialogue's final turn, and its
    # turns an earlier window models are context only, so every turn is modelled exactly once
    windows: str = choice("overlapping", "overlapping", "disjoint")
    # DailyDialog: 93 of the 1,000 test dialogues (69 of the validation ones) also appear verbatim in train; True
    # drops them from test and validation (published kgCVAE / DialogWAE numbers keep them)
    drop_train_overlap: bool = False


@dataclass
class ImageDataConfig(Checked):
    """Image corpora: images held out for validation and test where the source has no such split (None: a tenth, at
    most 5,000), chosen by split_seed; binarize: pixels >= 0.5 become 1; grayscale: image_folder's RGB files to one
    channel."""

    section = "data.images"
    valid_size: Union[int, None] = bounded(None, 1)
    test_size: Union[int, None] = bounded(None, 1)
    split_seed: int = bounded(0, 0)
    binarize: bool = False
    grayscale: bool = True


@dataclass
class DataConfig(Checked):
    """Where sentences come from, how they are tokenized and batched."""

    section = "data"

    corpus: str = "synthetic"  # registry.CORPORA: synthetic, lines, hf, dailydialog, dialogue_jsonl, sprites, digits, mnist, ...
    data_dir: Union[str, None] = None  # folder with train/valid/test files (lines, hf)
    text_column: str = "text"  # hf: the column holding the sentence
    synthetic_size: int = bounded(24000, 30)  # synthetic: number of sentences over all splits
    synthetic_seed: int = bounded(0, 0)  # synthetic: which sentences; fixed apart from the run's seed so runs share data
    # text files that are not valid UTF-8: strict names the file and line; replace reads bad bytes as U+FFFD
    encoding_errors: str = choice("strict", "strict", "replace")
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    batch_size: int = bounded(32, 1)
    eval_batch_size: int = bounded(128, 1)
    bucket: bool = True  # length-bucketed batches, so padding stays small
    # training batches of one sentence length each, the same batches every epoch in a new order, as He et al.'s and
    # Li et al.'s code batches (MonoTextData.create_data_batch); for reproducing it (PTB: 1,359 batches of <= 32)
    same_length_batches: bool = False
    dialogue: DialogueDataConfig = field(default_factory=DialogueDataConfig)
    images: ImageDataConfig = field(default_factory=ImageDataConfig)


@dataclass
class TrainConfig(Checked):
    """Optimisation and bookkeeping for the trainer."""

    section = "train"

    output_dir: str = "runs/default"
    max_steps: int = bounded(2000, 0)  # 0 saves the initial (or init_from) weights as they are
    learning_rate: float = bounded(1e-3, 0, above=True)  # plateau: the starting rate
    optimizer: str = choice("adam", "adam", "adamw", "sgd")
    # sgd only, as torch.optim.SGD takes them (He et al. and Li et al. run plain SGD: momentum 0); Adam's beta1 is its
    # momentum, so a nonzero momentum or nesterov with adam/adamw is an error
    momentum: float = bounded(0.0, 0, 1, below=True)
    nesterov: bool = False  # needs momentum > 0
    weight_decay: float = bounded(0.0, 0)
    # constant, linear, cosine: functions of the step. plateau (He et al. 2019, Li et al. 2019): at each validation
    # the rate is multiplied by plateau_factor after plateau_patience validations in a row worse than the best one
    # since the last decay (at a decay that validation becomes the one to beat), from plateau_start on; a decay
    # reloads best/ (plateau_reload_best) and resets the optimizer state; plateau_max_decays decays end the run
    lr_schedule: str = choice("constant", "constant", "linear", "cosine", "plateau")
    plateau_factor: float = bounded(0.5, 0, 1, above=True, below=True)
    plateau_patience: int = bounded(2, 1)  # validations
    plateau_max_decays: int = bounded(5, 0)  # 0: never stop early
    plateau_start: int = bounded(0, 0)  # no decay before this step (the papers' code: epoch 15)
    plateau_reload_best: bool = True
    # the validation figure that picks best/ (and that plateau decay watches): the ELBO, or the reconstruction term
    # alone (an autoencoder stage, beta 0, whose KL nothing trains: Li et al. 2019's pretraining)
    select_on: str = choice("elbo", "elbo", "rec")
    warmup_steps: int = bounded(0, 0)
    grad_clip: float = bounded(5.0, 0)  # maximum gradient norm; 0 = no clipping
    grad_accum_steps: int = bounded(1, 1)
    mixed_precision: str = choice("no", "no", "fp16", "bf16")
    # None: about 10 validations and checkpoints per run, max(1, max_steps // 10)
    eval_every: Union[int, None] = bounded(None, 1)
    checkpoint_every: Union[int, None] = bounded(None, 1)
    keep_checkpoints: int = bounded(2, 1)
    log_every: int = bounded(50, 1)
    # a step whose loss or gradient norm is NaN or infinite is skipped (logged as skipped_steps); this many in a row
    # stop the run with an error (1: stop at the first)
    max_nonfinite_steps: int = bounded(5, 1)
    # start from the weights of a model folder (e.g. an autoencoder, for Li et al. 2019's pretraining) instead of a
    # fresh initialisation; init_modules keeps only the named top-level modules (e.g. [encoder]), [] takes all
    init_from: Union[str, None] = None
    init_modules: list[str] = field(default_factory=list)
    # on a CPU, keep freed memory in the process (glibc mallopt) instead of returning it to the kernel after every
    # step: the step's (tokens x vocabulary) tensors then reuse mapped pages (see training.host_memory)
    keep_host_memory: bool = True
    # threads per process on a CPU; 0: the machine's physical cores shared among its processes (accelerate launch
    # alone sets OMP_NUM_THREADS=1 for a single CPU process, half of a 2-core machine)
    cpu_threads: int = bounded(0, 0)

    def check(self) -> None:
        if self.optimizer != "sgd" and (self.momentum or self.nesterov):
            raise ConfigError(
                f"train.momentum ({self.momentum:g}) and train.nesterov ({self.nesterov}) apply to train.optimizer "
                f"sgd only; {self.optimizer} keeps its own running averages (beta1)"
            )
        if self.nesterov and self.momentum == 0:
            raise ConfigError("train.nesterov needs train.momentum > 0 (torch.optim.SGD's rule)")


@dataclass
class Config(Checked):
    """Everything one run needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = bounded(0, 0, 2**32 - 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        return from_dict(cls, _migrate(data))


# ---------------------------------------------------------------- building from dicts, with checks




def _unknown_key(key: str, valid: Iterable[str]) -> ConfigError:
    if key in MOVED_KEYS:
        return ConfigError(f"config key {key!r} is now {MOVED_KEYS[key]}")
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
    return cls(**kwargs)  # Checked.__post_init__ checks choices and ranges


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
