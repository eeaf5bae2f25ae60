"""The command-line entry for training (``scripts/train_text_vae.py`` and ``textvae train``): flags, config,
training, and the closing summary."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Optional, Sequence

from ..config import load_config

DEFAULT_CONFIG = "default.yaml"


SENTENCE_DESCRIPTION = "Train a sentence VAE. With no arguments: the embedded corpus and configs/default.yaml settings."


def build_parser(prog: str = "train_text_vae.py", description: str = SENTENCE_DESCRIPTION) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Trailing key=value pairs override the config, e.g. model.latent.size=32 train.learning_rate=5e-4",
    )
    parser.add_argument("--config", help="YAML config file (default: the built-in defaults of configs/default.yaml)")
    parser.add_argument("--data-dir", help="folder with train/valid/test files; sets data.data_dir "
                        "(and data.corpus=lines when the config uses the embedded corpus)")
    parser.add_argument("--output-dir", help="where checkpoints, logs and model folders go (train.output_dir)")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (train.max_steps)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-summary", action="store_true", help="skip the closing reconstructions and samples")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    return parser


def default_config_path(name: str = DEFAULT_CONFIG) -> Optional[str]:
    """configs/<name> from a source checkout, if there is one (an installed package uses built-in defaults)."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "configs", name)
    return path if os.path.isfile(path) else None


def config_from_args(args: argparse.Namespace, default_config: str = DEFAULT_CONFIG):
    overrides = list(args.overrides)
    config = load_config(args.config or default_config_path(default_config), overrides)
    extra = []
    if args.data_dir:
        extra.append(f"data.data_dir={args.data_dir}")
        if config.data.corpus == "synthetic":
            extra.append("data.corpus=lines")
    if args.output_dir:
        extra.append(f"train.output_dir={args.output_dir}")
    if args.max_steps is not None:
        extra.append(f"train.max_steps={args.max_steps}")
    if extra:
        config = load_config(args.config or default_config_path(default_config), overrides + extra)
    return config


def print_summary(result, data) -> None:
    """Valid figures (with a warning when no latent unit is active), three reconstructions, three prior samples
    decoded greedily and by nucleus sampling, and one interpolation from the best model (for dialogue data,
    ``print_dialogue_summary``, so ``textvae train`` serves dialogue configs too)."""
    from ..data.dialogue import DialogueData
    from ..evaluation.latent_stats import collapse_warning
    from ..models.base import load_pretrained

    if isinstance(data, DialogueData):
        return print_dialogue_summary(result, data)

    folder = result.best_dir or result.final_dir
    model = load_pretrained(folder)
    v = result.valid
    state = result.state
    print(f"\nmodel folder: {folder}" + (f" (best valid ELBO {state.best_elbo:.3f}, step {state.best_step})" if result.best_dir else ""))
    print(
        f"valid at step {state.step}: ELBO {v['elbo']:.3f} nats/sentence (rec {v['rec']:.3f}, KL {v['kl']:.3f}), "
        f"PPL per token <= {v['ppl_bound']:.2f}, active units {v['active_units']}/{model.latent.code_size}"
    )
    warning = collapse_warning(v["kl"], v["active_units"], model.latent.code_size, model.config.objective)
    if warning:
        print(f"warning: {warning}")
    if model.latent.code_size == 0:
        print("\nsamples (a language model: no latent variable to reconstruct from or interpolate through):")
        for sample in model.sample(3, seed=0, strategy="sample"):
            print(f"  {sample}")
        return
    sentences = data.sentences("test")[:3]
    print("\nreconstructions (test sentence -> greedy decode of the posterior mean):")
    for source, rebuilt in zip(sentences, model.reconstruct(sentences)):
        print(f"  {source}\n  -> {rebuilt}")
    # greedy decoding shows the mode, which after a short run often loops or stops early; sampling from the
    # nucleus of the same z shows what the model has actually learnt to say
    print("\nsamples from the prior (each z decoded greedily, then sampled with top-p 0.9):")
    greedy = model.sample(3, seed=0)
    sampled = model.sample(3, seed=0, strategy="sample", top_p=0.9)
    for one, other in zip(greedy, sampled):
        print(f"  greedy:  {one}\n  sampled: {other}")
    a, b = data.sentences("test")[3], data.sentences("test")[4]
    print("\ninterpolation (posterior means, 6 steps):")
    for i, sentence in enumerate(model.interpolate(a, b, steps=6)):
        print(f"  {i}: {sentence}")


def print_dialogue_summary(result, data, contexts: int = 3, samples: int = 5, scored: int = 50) -> None:
    """Valid figures, responses from several z for a few test contexts, and the response metrics of the first
    ``scored`` test contexts (10 samples each; see ``evaluation.dialogue``)."""
    from ..evaluation.dialogue import evaluate_responses
    from ..models.base import load_pretrained

    folder = result.best_dir or result.final_dir
    model = load_pretrained(folder)
    v, state = result.valid, result.state
    print(f"\nmodel folder: {folder}" + (f" (best valid ELBO {state.best_elbo:.3f}, step {state.best_step})" if result.best_dir else ""))
    unit = "window of turns" if model.config.model_type == "vhred" else "response"
    print(f"valid at step {state.step}: ELBO {v['elbo']:.3f} nats/{unit} (rec {v['rec']:.3f}, KL {v['kl']:.3f}), "
          f"PPL per token <= {v['ppl_bound']:.2f}")
    texts = data.texts["test"][:contexts]
    if model.config.dialogue.condition == "label":
        responses = model.respond(labels=[max(0, t.act if model.config.dialogue.act_label == "act" else t.emotion)
                                          for t in texts], num_samples=samples, seed=0)
    else:
        responses = model.respond([t.context for t in texts], num_samples=samples, seed=0)
    print(f"\nresponses from {samples} z ~ p(z|c) (greedy), test contexts:")
    for text, options in zip(texts, responses):
        print("  context: " + " | ".join(text.context[-3:]))
        print(f"  reference: {text.response}")
        for option in options:
            print(f"    -> {option}")
    metrics, _ = evaluate_responses(model, data.datasets["test"], num_samples=10, iw_samples=10, limit=scored)
    m = metrics
    print(f"\ntest, first {m.contexts} contexts, 10 samples each: BLEU recall {m.bleu_recall:.3f} precision "
          f"{m.bleu_precision:.3f} F1 {m.bleu_f1:.3f} (smoothed sentence BLEU); distinct-1/2 within "
          f"{m.distinct_1_within:.3f}/{m.distinct_2_within:.3f}, overall {m.distinct_1_overall:.3f}/"
          f"{m.distinct_2_overall:.3f}; KL {m.kl:.3f}; IW-NLL {m.nll:.3f} (K=10), PPL per token {m.ppl:.2f}")


def main(
    argv: Optional[Sequence[str]] = None,
    prog: str = "train_text_vae.py",
    summary: Callable = print_summary,
    default_config: str = DEFAULT_CONFIG,
    description: str = SENTENCE_DESCRIPTION,
) -> int:
    """Parse flags, train, print ``summary(result, data)``; the dialogue script passes its own summary and config."""
    from ..errors import TextVAEError
    from .trainer import train

    args = build_parser(prog, description).parse_args(argv)
    try:
        config = config_from_args(args, default_config)
    except TextVAEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    main_process = int(os.environ.get("RANK", "0")) == 0  # accelerate's state is made inside train(), not before
    try:
        from ..data.pipeline import prepare_data

        data = prepare_data(config.data, config.model.max_length, overlong=config.model.overlong)
        if main_process:
            print(data.describe(), flush=True)
        result = train(config, resume=args.resume, data=data, progress=not args.no_progress)
    except TextVAEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if PartialState().is_main_process:
        print("\n" + trained_line(result, config.train.max_steps)
              + f"; wall time with data and summary so far {time.perf_counter() - start:.1f} s")
        if not args.no_summary:
            summary(result, data)
    return 0


def trained_line(result, max_steps: int) -> str:
    """What this run trained: its steps (not the resumed run's total), their time and rate, and skipped steps."""
    steps = result.state.step - result.start_step
    if steps == 0:
        if result.start_step:
            return f"trained 0 steps (resumed at step {result.start_step}, train.max_steps is {max_steps})"
        return "trained 0 steps (train.max_steps is 0)"
    span = f" (steps {result.start_step + 1} to {result.state.step})" if result.start_step else ""
    skipped = f", {result.skipped_steps} skipped as not finite" if result.skipped_steps else ""
    tokens_per_s = result.tokens / max(result.seconds, 1e-9)
    return f"trained {steps} steps{span} in {result.seconds:.1f} s ({tokens_per_s:,.0f} tokens/s{skipped})"
