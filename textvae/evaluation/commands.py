"""Command-line entry points for evaluation: ``interpolate_main(argv)`` and ``evaluate_main(argv)``, which
``textvae interpolate`` / ``textvae evaluate`` and ``scripts/interpolate.py`` / ``scripts/evaluate.py`` call."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import CommandError, TextVAEError

MODEL_SUBFOLDERS = ("best", "final", "last")


# ---------------------------------------------------------------- shared by every command that loads a model
# (``textvae evaluate | interpolate | sample | encode``; ``textvae.commands`` imports these)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in ``--help``, except where the help text already says it (defaults of None)
    or the option is an on/off flag."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose defaults show in ``--help`` and whose errors (a bad or missing value) raise
    ``CommandError``, so the command prints one ``error:`` line and exits with status 2, never a usage block."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise CommandError(f"{message} (see {self.prog} --help)")


def int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def float_in(low: float, high: float = math.inf, low_open: bool = False):
    """An argparse type: a float in [low, high] ((low, high] with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value > low if low_open else value >= low) or not value <= high or math.isinf(value):
            bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]" if high < math.inf else (
                f"{'above' if low_open else 'at least'} {low:g}")
            raise argparse.ArgumentTypeError(f"must be {'in ' if high < math.inf else ''}{bounds}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def resolve_model_folder(path: str) -> Path:
    """A model folder (with ``config.json``), or a run folder holding one as ``best``/``final``/``last``."""
    folder = Path(path)
    if (folder / "config.json").is_file():
        return folder
    for name in MODEL_SUBFOLDERS:
        if (folder / name / "config.json").is_file():
            print(f"using the model in {folder / name}", file=sys.stderr)
            return folder / name
    if not folder.exists():
        raise CommandError(f"model folder not found: {folder} does not exist")
    raise CommandError(
        f"{folder} is not a model folder: no config.json in it nor in a {'/'.join(MODEL_SUBFOLDERS)} subfolder"
    )


def load_model(path: "str | Path", device: Optional[str] = None):
    """The model of a model folder or run folder (``resolve_model_folder``) and that folder. On a CPU the
    command's process also keeps freed memory for reuse, as training does (importance-weighted NLL over PTB's test
    split: 94.6 -> 77.5 s per 100 sentences at K = 500)."""
    from ..models.base import load_pretrained
    from ..training.host_memory import keep_freed_host_memory

    folder = resolve_model_folder(str(path))
    model = load_pretrained(folder, device=device)
    if model.device.type == "cpu":
        keep_freed_host_memory()
    return model, folder


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The positional MODEL (a model or run folder) and ``--device``."""
    parser.add_argument("model", help="model folder written by save_pretrained (config.json, model.safetensors, "
                        "tokenizer), or a run folder holding one as best/, final/ or last/")
    parser.add_argument("--device", default=None, help="torch device to run on, e.g. cuda (default: the CPU)")


SAMPLE_ONLY = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
BEAM_ONLY = {"beam_size": 4, "length_penalty": 1.0}


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """The decoding flags every command that generates text takes (``decoding_kwargs`` reads them back)."""
    group = parser.add_argument_group("decoding")
    group.add_argument("--strategy", choices=("greedy", "sample", "beam"), default="greedy",
                       help="greedy: the most likely token each step; sample: draw from the softmax; beam: beam search")
    group.add_argument("--temperature", type=float_in(0.0, low_open=True), default=SAMPLE_ONLY["temperature"],
                       help="sample: divide the logits by this (below 1: safer, above 1: more varied)")
    group.add_argument("--top-k", type=int_at_least(0), default=SAMPLE_ONLY["top_k"],
                       help="sample: only from the k most likely tokens (0: all)")
    group.add_argument("--top-p", type=float_in(0.0, 1.0, low_open=True), default=SAMPLE_ONLY["top_p"],
                       help="sample: only from the smallest set of tokens whose probability reaches p (1: all)")
    group.add_argument("--beam-size", type=int_at_least(1), default=BEAM_ONLY["beam_size"],
                       help="beam: hypotheses kept per sentence")
    group.add_argument("--length-penalty", type=float_in(0.0), default=BEAM_ONLY["length_penalty"],
                       help="beam: rank finished hypotheses by log p / length**this (0: raw log p, favours short)")
    group.add_argument("--repetition-penalty", type=float_in(1.0), default=1.0,
                       help="any strategy: divide positive and multiply negative logits of tokens already in the "
                       "sentence by this (CTRL; 1: off, 1.2-1.5 usual)")
    group.add_argument("--no-repeat-ngram-size", type=int_at_least(0), default=0,
                       help="any strategy: never repeat an n-gram of this many tokens within a sentence (0: off)")
    group.add_argument("--max-length", type=int_at_least(1), default=None,
                       help="most tokens per sentence (default: the model's max_length)")


def decoding_kwargs(args: argparse.Namespace) -> dict:
    """The ``generate`` keyword arguments of the decoding flags; a flag of another strategy is an error."""
    kwargs = {"strategy": args.strategy, "max_length": args.max_length,
              "repetition_penalty": args.repetition_penalty, "no_repeat_ngram_size": args.no_repeat_ngram_size}
    for strategy, flags in (("sample", SAMPLE_ONLY), ("beam", BEAM_ONLY)):
        if args.strategy == strategy:
            kwargs.update({name: getattr(args, name) for name in flags})
        else:
            changed = [name for name, default in flags.items() if getattr(args, name) != default]
            if changed:
                names = ", ".join("--" + name.replace("_", "-") for name in changed)
                raise CommandError(f"{names} apply to --strategy {strategy}, not {args.strategy}")
    return kwargs


def pick_grammar(choice: str, sentences: Sequence[str]):
    """``synthetic``: the embedded corpus grammar; ``auto``: the same when every given sentence is one it
    generates (the model was then most likely trained on that corpus); ``none``: no grammar column."""
    from ..data.synthetic import GRAMMAR

    if choice == "synthetic" or (choice == "auto" and sentences and all(GRAMMAR.accepts(s) for s in sentences)):
        return GRAMMAR.accepts
    return None


def run_command(main, argv) -> int:
    """``main(argv)``'s exit status; any deliberate error (``TextVAEError``; ``ValueError`` from a library
    function's argument check) becomes one ``error:`` line on standard error and status 2."""
    try:
        return main(argv)
    except (TextVAEError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------- interpolate


def interpolation_parser(prog: str = "textvae interpolate") -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=prog,
        description="Decode a path through latent space between two sentences (their posterior means) or, with "
        "--prior, between two prior samples, and print it as a table.",
    )
    add_model_arguments(parser)
    parser.add_argument("a", nargs="?", help="first sentence")
    parser.add_argument("b", nargs="?", help="second sentence")
    parser.add_argument("--steps", type=int_at_least(2), default=8, help="points on the path, ends included")
    parser.add_argument("--method", choices=("linear", "spherical"), default="linear",
                        help="a straight line between the codes, or the great circle (slerp)")
    parser.add_argument("--prior", action="store_true", help="interpolate between two prior samples instead")
    parser.add_argument("--seed", type=int, default=0, help="seed for --prior and for sampled decoding")
    parser.add_argument("--grammar", choices=("auto", "synthetic", "none"), default="auto",
                        help="mark sentences the embedded corpus grammar accepts (auto: when both inputs are its)")
    parser.add_argument("--json", action="store_true", help="print the path and its measures as JSON")
    add_decoding_arguments(parser)
    return parser


def _interpolate(argv: Optional[Sequence[str]]) -> int:
    import torch

    from .homotopy import format_path, prior_path, sentence_path

    args = interpolation_parser().parse_args(argv)
    if args.prior == bool(args.a or args.b):
        raise CommandError("give two sentences, or --prior (and no sentences)")
    if not args.prior and not (args.a and args.b):
        raise CommandError("give two sentences to interpolate between")
    kwargs = decoding_kwargs(args)
    torch.manual_seed(args.seed)
    model, _ = load_model(args.model, args.device)
    grammar = pick_grammar(args.grammar, [args.a, args.b] if not args.prior else [])
    if args.prior and args.grammar == "synthetic":
        grammar = pick_grammar("synthetic", [])
    if args.prior:
        path = prior_path(model, args.steps, args.method, seed=args.seed, grammar=grammar, **kwargs)
    else:
        path = sentence_path(model, args.a, args.b, args.steps, args.method, grammar=grammar, **kwargs)
    if args.json:
        print(json.dumps({"a": path.start, "b": path.end, "method": path.method, "t": path.t,
                          "sentences": path.sentences, "metrics": path.metrics}, indent=2))
    else:
        print(format_path(path, grammar))
    return 0


def interpolate_main(argv: Optional[Sequence[str]] = None) -> int:
    """``textvae interpolate MODEL "sentence a" "sentence b" --steps 8``: print the decoded path; returns the exit
    status (2 with a one-line message on bad input)."""
    return run_command(_interpolate, argv)


# ---------------------------------------------------------------- evaluate


def evaluation_parser(prog: str = "textvae evaluate") -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=prog,
        description="Evaluate a model on a corpus split: IW-NLL and perplexity (per word and per token), ELBO "
        "terms, KL, mutual information, active units, reconstruction BLEU, prior-sample diversity and "
        "interpolation smoothness. Writes metrics.json and figures (training curves when the run's log.jsonl is "
        "found, latent activity and KL per dimension, a PCA map of posterior means).",
    )
    add_model_arguments(parser)
    parser.add_argument("--data-dir", default=None,
                        help="corpus folder (train/valid/test files); default: the run's config.yaml, else the "
                        "embedded synthetic corpus")
    parser.add_argument("--corpus", default=None, help="corpus loader: lines (default with --data-dir), hf, synthetic")
    parser.add_argument("--split", choices=("train", "valid", "test"), default="test", help="the split to evaluate")
    parser.add_argument("--config", default=None,
                        help="a run's config.yaml whose data section names the corpus (default: the one beside "
                        "the model folder, when there is one)")
    parser.add_argument("--num-samples", type=int_at_least(0), default=500,
                        help="importance samples per sentence for IW-NLL (0: skip IW-NLL)")
    parser.add_argument("--max-sentences", type=int_at_least(2), default=None,
                        help="evaluate the first N sentences only (default: the whole split)")
    parser.add_argument("--output-dir", default=None,
                        help="where metrics.json and the figures go (default: eval-<model>-<split> beside the model)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=16, help="sentences per IW-NLL batch")
    parser.add_argument("--prior-samples", type=int_at_least(0), default=1000,
                        help="prior samples for distinct-n and self-BLEU (0 or 1: skip)")
    parser.add_argument("--interpolation-pairs", type=int_at_least(0), default=50,
                        help="sentence pairs whose interpolations are measured (0: skip)")
    parser.add_argument("--log", default=None, help="training log (default: log.jsonl in the run folder)")
    parser.add_argument("--color-by", default=None,
                        help="corpus factor that colours the latent map (synthetic: default sentence_type); "
                        "without factors the map is coloured by sentence length")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random draw (z samples, prior, pairs)")
    parser.add_argument("--threads", type=int_at_least(1), default=None,
                        help="torch CPU threads (1 is fastest on a small machine that other work shares; "
                        "default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars or stage messages (bars show only on a terminal anyway)")
    add_decoding_arguments(parser)
    return parser


def _data_config(args: argparse.Namespace, model_folder: Path):
    """The DataConfig to read: --data-dir/--corpus, else the run's config.yaml, else the embedded corpus."""
    from ..config import DataConfig, load_config

    config_path = Path(args.config) if args.config else model_folder.parent / "config.yaml"
    if args.config and not config_path.is_file():
        raise CommandError(f"config file {config_path} not found")
    if args.data_dir or args.corpus:
        base = load_config(config_path).data if args.config else DataConfig()
        corpus = args.corpus or ("lines" if args.data_dir else base.corpus)
        return DataConfig(**{**base.__dict__, "corpus": corpus, "data_dir": args.data_dir or base.data_dir}), "arguments"
    if config_path.is_file():
        return load_config(config_path).data, str(config_path)
    return DataConfig(), "the embedded synthetic corpus (defaults)"


def _find_log(args: argparse.Namespace, model_folder: Path) -> Optional[Path]:
    if args.log:
        if not Path(args.log).is_file():
            raise CommandError(f"log file {args.log} not found")
        return Path(args.log)
    for candidate in (model_folder / "log.jsonl", model_folder.parent / "log.jsonl"):
        if candidate.is_file():
            return candidate
    return None


def _evaluate(argv: Optional[Sequence[str]]) -> int:
    import time

    import torch

    from ..data.corpora import load_corpus
    from ..data.synthetic import GRAMMAR
    from . import generation, homotopy, likelihood, plots
    from .latent_stats import collapse_warning, latent_statistics

    args = evaluation_parser().parse_args(argv)
    decode = decoding_kwargs(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model, model_folder = load_model(args.model, args.device)
    data_config, data_source = _data_config(args, model_folder)
    corpus = load_corpus(data_config)
    sentences = corpus.split(args.split)
    factors = corpus.factors.get(args.split) if corpus.factors else None
    if args.max_sentences is not None:
        sentences = sentences[: args.max_sentences]
        factors = None if factors is None else factors[: args.max_sentences]
    if len(sentences) < 2:
        raise CommandError(f"the {args.split} split has {len(sentences)} sentences; need at least two")
    grammar = GRAMMAR.accepts if corpus.name == "synthetic" else None
    labels, label_name = _map_labels(args, corpus, factors, sentences)  # fails early on a bad --color-by
    out = Path(args.output_dir) if args.output_dir else model_folder.parent / f"eval-{model_folder.name}-{args.split}"
    out.mkdir(parents=True, exist_ok=True)
    # bars on a terminal only (tqdm's disable=None), never with --no-progress
    progress = False if args.no_progress else None

    def bar(label: str):
        return False if args.no_progress else label

    say = (lambda *a: None) if args.no_progress else (lambda *a: print(*a, file=sys.stderr))
    say(f"evaluating {model_folder} on {corpus.name}/{args.split} ({len(sentences)} sentences; data from {data_source})")

    metrics: dict = {"model": str(model_folder), "corpus": corpus.name, "split": args.split,
                     "num_sentences": len(sentences), "seed": args.seed, "decoding": decode}
    timings: dict = {}
    tokens = likelihood.predicted_tokens(model, sentences)
    words = likelihood.predicted_words(model, sentences)
    metrics |= {"num_tokens": int(tokens.sum()), "num_words": int(words.sum())}

    start = time.perf_counter()
    terms = likelihood.elbo_terms(model, sentences, seed=args.seed, progress=progress)
    metrics |= {"rec": float(terms.rec.mean()), "elbo": float(terms.elbo.mean()),
                "nll_elbo": float(terms.nll_bound.mean()), "ppl_elbo_per_token": terms.perplexity_bound("token"),
                "ppl_elbo_per_word": terms.perplexity_bound("word")}
    timings["elbo"] = time.perf_counter() - start
    if args.num_samples:
        start = time.perf_counter()
        nll = likelihood.importance_weighted_nll(model, sentences, num_samples=args.num_samples,
                                                 batch_size=args.batch_size, seed=args.seed, progress=progress)
        figures = likelihood.perplexities(nll, tokens, words)
        metrics |= {"nll": figures["nll"], "ppl_per_token": figures["ppl_per_token"],
                    "ppl_per_word": figures["ppl_per_word"], "iw_num_samples": args.num_samples}
        timings["iw_nll"] = time.perf_counter() - start
        say(f"IW-NLL {metrics['nll']:.2f}, PPL per word {metrics['ppl_per_word']:.2f}, per token "
            f"{metrics['ppl_per_token']:.2f} (K={args.num_samples}, {timings['iw_nll']:.0f} s)")

    start = time.perf_counter()
    stats = latent_statistics(model, sentences, seed=args.seed, progress=progress)
    metrics |= {"kl": stats.kl, "mutual_information": stats.mutual_information, "active_units": stats.active_units,
                "latent_size": int(stats.kl_per_dim.numel()), "kl_per_dim": stats.kl_per_dim.tolist(),
                "unit_variances": stats.unit_variances.tolist()}
    warning = collapse_warning(stats.kl, stats.active_units, metrics["latent_size"], model.config.objective,
                               stats.mutual_information)
    metrics["warnings"] = [warning] if warning else []
    timings["latent_stats"] = time.perf_counter() - start

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    recs = generation.reconstructions(model, sentences, progress=bar("reconstructions"), **decode)
    view = generation.model_view(model, sentences)
    metrics["reconstruction_bleu"] = generation.corpus_bleu(recs, view)
    metrics["reconstruction_exact"] = sum(r == v for r, v in zip(recs, view)) / len(view)
    prior, samples = generation.prior_sample_metrics(
        model, args.prior_samples, seed=args.seed, grammar=grammar, progress=bar("prior samples"), **decode
    ) if args.prior_samples > 1 else ({}, [])
    metrics["prior_samples"] = prior | {"num_samples": args.prior_samples}
    if grammar is not None:
        metrics["reconstruction_grammatical"] = sum(map(grammar, recs)) / len(recs)
    if args.interpolation_pairs > 0:
        metrics["interpolation"] = {
            method: homotopy.average_path_metrics(model, sentences, args.interpolation_pairs, steps=8, method=method,
                                                  seed=args.seed, grammar=grammar,
                                                  progress=bar(f"{method} interpolations"), **decode)
            for method in homotopy.METHODS
        }
    timings["generation"] = time.perf_counter() - start

    figures = {}
    log = _find_log(args, model_folder)
    if log is not None:
        figures["training_curves"] = str(plots.plot_training_curves(log, out / "training_curves.png",
                                                                    title=str(model_folder.parent.name)))
    figures["kl_per_dim"] = str(plots.plot_kl_per_dim(stats.kl_per_dim, out / "kl_per_dim.png", stats.unit_variances))
    figures["latent_map"] = str(plots.plot_latent_map(stats.means, out / "latent_map.png", labels, label_name,
                                                      seed=args.seed))
    metrics["figures"] = figures
    metrics["seconds"] = timings
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "reconstructions.tsv").write_text("".join(f"{v}\t{r}\n" for v, r in zip(view, recs)))
    (out / "samples.txt").write_text("".join(s + "\n" for s in samples))
    print(_summary(metrics, out))
    return 0


def _map_labels(args, corpus, factors, sentences):
    if factors is not None and corpus.factor_names:
        name = args.color_by or ("sentence_type" if "sentence_type" in corpus.factor_names else corpus.factor_names[0])
        if name not in corpus.factor_names:
            raise CommandError(f"--color-by {name!r} is not a factor of {corpus.name}: {', '.join(corpus.factor_names)}")
        column = factors[:, corpus.factor_names.index(name)]
        values = (corpus.info.get("factor_values") or {}).get(name)
        return ([values[v] for v in column] if values else column), name
    if args.color_by:
        raise CommandError(f"corpus {corpus.name} has no factor labels to colour by")
    return [len(s.split()) for s in sentences], "length (words)"


def _summary(metrics: dict, out: Path) -> str:
    rows = [("sentences", f"{metrics['num_sentences']} (perplexity counts {metrics['num_words']} words or "
                          f"{metrics['num_tokens']} tokens, one end of sentence each included)")]
    if "nll" in metrics:
        rows += [(f"IW-NLL (K={metrics['iw_num_samples']})", f"{metrics['nll']:.3f} nats/sentence"),
                 ("PPL per word", f"{metrics['ppl_per_word']:.3f}  (compares across tokenizers)"),
                 ("PPL per token", f"{metrics['ppl_per_token']:.3f}")]
    rows += [("-ELBO", f"{metrics['nll_elbo']:.3f} (PPL <= {metrics['ppl_elbo_per_word']:.2f} per word, "
                       f"{metrics['ppl_elbo_per_token']:.2f} per token)"),
             ("rec", f"{metrics['rec']:.3f}"), ("KL", f"{metrics['kl']:.3f}"),
             ("MI", f"{metrics['mutual_information']:.3f}"),
             ("AU", f"{metrics['active_units']}/{metrics['latent_size']}"),
             ("reconstruction BLEU", f"{metrics['reconstruction_bleu']:.2f}")]
    prior = metrics.get("prior_samples", {})
    if "distinct_1" in prior:
        rows += [("prior distinct-1/2", f"{prior['distinct_1']:.3f} / {prior['distinct_2']:.3f}"),
                 ("prior self-BLEU", f"{prior['self_bleu']:.2f}"),
                 ("prior unique", f"{prior['unique_fraction']:.1%}")]
        if "grammatical_fraction" in prior:
            rows.append(("prior grammatical", f"{prior['grammatical_fraction']:.1%}"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"warning: {warning}" for warning in metrics.get("warnings", [])]
    return "\n".join(lines + [f"written to {out}"])


def evaluate_main(argv: Optional[Sequence[str]] = None) -> int:
    """``textvae evaluate MODEL --data-dir DIR --split test``: write metrics.json and figures; returns the exit
    status (2 with a one-line message on bad input)."""
    return run_command(_evaluate, argv)
