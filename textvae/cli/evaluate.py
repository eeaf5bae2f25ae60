"""``textvae evaluate MODEL`` (and ``scripts/evaluate.py``): IW-NLL, perplexity per word and per token, ELBO terms,
latent usage, generation quality and figures of a model on a corpus split, written to metrics.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import CommandError
from .common import (
    CommandParser,
    add_data_arguments,
    add_decoding_arguments,
    add_model_arguments,
    data_config,
    decoding_kwargs,
    int_at_least,
    load_model,
    run_command,
)


UNRELIABLE_SHARE = 0.1
"""Share of sentences with Pareto k-hat above 0.7 beyond which the summary warns that the IW-NLL is unreliable."""


def evaluation_parser(prog: str = "textvae evaluate") -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=prog,
        description="Evaluate a model on a corpus split: IW-NLL and perplexity (per word and per token), ELBO "
        "terms, KL, mutual information, active units, reconstruction BLEU, prior-sample diversity and "
        "interpolation smoothness. Writes metrics.json and figures (training curves when the run's log.jsonl is "
        "found, latent activity and KL per dimension, a PCA map of posterior means).",
    )
    add_model_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--split", choices=("train", "valid", "test"), default="test", help="the split to evaluate")
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
    from ..evaluation import generation, homotopy, likelihood, plots
    from ..evaluation.latent_stats import collapse_warning, latent_statistics

    args = evaluation_parser().parse_args(argv)
    decode = decoding_kwargs(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model, model_folder = load_model(args.model, args.device)
    corpus_config, data_source = data_config(args, model_folder)
    corpus = load_corpus(corpus_config)
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
        estimate = likelihood.importance_weighted_estimate(model, sentences, num_samples=args.num_samples,
                                                           batch_size=args.batch_size, seed=args.seed,
                                                           progress=progress)
        figures = likelihood.perplexities(estimate.nll, tokens, words)
        metrics |= {"nll": figures["nll"], "ppl_per_token": figures["ppl_per_token"],
                    "ppl_per_word": figures["ppl_per_word"], "iw_num_samples": args.num_samples,
                    "iw_convergence": estimate.convergence()}
        metrics["iw_convergence"]["elbo_gap"] = metrics["nll_elbo"] - metrics["nll"]
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
    if args.num_samples and metrics["iw_convergence"]["unreliable_fraction"] > UNRELIABLE_SHARE:
        conv = metrics["iw_convergence"]
        metrics["warnings"].append(
            f"the IW-NLL is unreliable for {conv['unreliable_fraction']:.0%} of the sentences (Pareto k-hat above "
            f"{conv['pareto_k_threshold']} at K={args.num_samples}; effective sample size median {conv['ess_median']:.1f}): "
            "q(z|x) is narrower than the posterior there, so the NLL can sit well above log p(x) and more "
            "samples close the gap only slowly"
        )
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
        conv = metrics["iw_convergence"]
        path = ", ".join(f"K={k} {v:.2f}" for k, v in conv["nll_by_samples"].items())
        rows += [("IW-NLL by samples", f"{path}  (-ELBO - IW-NLL = {conv['elbo_gap']:.2f})"),
                 ("effective samples", f"mean {conv['ess_mean']:.1f}, median {conv['ess_median']:.1f} of "
                                       f"{metrics['iw_num_samples']}"),
                 ("Pareto k-hat", f"median {conv['pareto_k_median']:.2f}; above {conv['pareto_k_threshold']} (unreliable) for "
                                  f"{conv['unreliable_fraction']:.1%} of sentences")]
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``textvae evaluate MODEL --data-dir DIR --split test``: write metrics.json and figures; returns the exit
    status (2 with a one-line message on bad input)."""
    return run_command(_evaluate, argv)
