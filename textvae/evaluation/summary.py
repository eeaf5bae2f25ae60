"""The summary printed at the end of a training run (``textvae train``, ``scripts/train_text_vae.py``,
``scripts/train_dialogue.py``): valid figures and decodes of the best model, or for dialogue models responses and
response metrics."""

from __future__ import annotations

from ..data.dialogue import DialogueData
from ..models.base import load_pretrained
from .latent_stats import collapse_warning


def print_summary(result, data) -> None:
    """Valid figures (with a warning when no latent unit is active), three reconstructions, three prior samples
    decoded greedily and by nucleus sampling, and one interpolation from the best model (for dialogue data,
    ``print_dialogue_summary``, so ``textvae train`` serves dialogue configs too)."""
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
    ``scored`` test (context, response) pairs (``DialogueData.response_pairs``; 10 samples each; see
    ``evaluation.dialogue``)."""
    from .dialogue import evaluate_responses  # nltk, loaded when a dialogue run ends


    folder = result.best_dir or result.final_dir
    model = load_pretrained(folder)
    v, state = result.valid, result.state
    print(f"\nmodel folder: {folder}" + (f" (best valid ELBO {state.best_elbo:.3f}, step {state.best_step})" if result.best_dir else ""))
    unit = "window of turns" if model.config.model_type == "vhred" else "response"
    print(f"valid at step {state.step}: ELBO {v['elbo']:.3f} nats/{unit} (rec {v['rec']:.3f}, KL {v['kl']:.3f}), "
          f"PPL per token <= {v['ppl_bound']:.2f}")
    # every model type is scored on the same (context, response) pairs, not on the windows it was trained with
    pairs, pair_texts = data.response_pairs("test")
    texts = pair_texts[:contexts]
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
    metrics, _ = evaluate_responses(model, pairs, num_samples=10, iw_samples=10, limit=scored)
    m = metrics
    print(f"\ntest, first {m.contexts} contexts, 10 samples each: BLEU recall {m.bleu_recall:.3f} precision "
          f"{m.bleu_precision:.3f} F1 {m.bleu_f1:.3f} (smoothed sentence BLEU); distinct-1/2 within "
          f"{m.distinct_1_within:.3f}/{m.distinct_2_within:.3f}, overall {m.distinct_1_overall:.3f}/"
          f"{m.distinct_2_overall:.3f}; KL {m.kl:.3f}; IW-NLL {m.nll:.3f} (K=10), PPL per token {m.ppl:.2f}")


def print_negotiation_summary(result, data, games: int = 100, seed: int = 0) -> None:
    """Valid figures of the best negotiation agent (response NLL and perplexity bound, selection accuracy), then
    ``games`` self-play games of the agent against itself on ``selfplay_eval.txt``'s goals (when the data folder
    has it): reward, agreement, Pareto-optimal share, turns, and the first game verbatim."""
    from pathlib import Path

    import torch

    from ..data.dealornodeal import read_goal_pairs
    from ..models.negotiation import NegotiationAgent
    from ..tasks.negotiation import play, summarize
    from .negotiation import split_elbo

    folder = result.best_dir or result.final_dir
    model = load_pretrained(folder)
    v, state = result.valid, result.state
    print(f"\nmodel folder: {folder}" + (f" (best valid ELBO {state.best_elbo:.3f}, step {state.best_step})" if result.best_dir else ""))
    right, total = split_elbo(model, data.datasets["valid"]).sums.get("selection_accuracy", (0.0, 0.0))
    print(f"valid at step {state.step}: rec {v['rec']:.3f} nats/example (KL {v['kl']:.3f}), response PPL per token <= "
          f"{v['ppl_bound']:.2f}; selection accuracy {100 * right / max(total, 1):.1f}% of {int(total)} agreed splits")
    goals = Path(data.corpus.info.get("data_dir", "")) / "selfplay_eval.txt"
    if not goals.is_file():
        return
    pairs = read_goal_pairs(goals)[:games]
    torch.manual_seed(seed)
    results = play([NegotiationAgent(model, seed=seed), NegotiationAgent(model, seed=seed + 1)], pairs, seed=seed)
    s = summarize(results)
    print(f"\nself-play against itself, {len(results)} games of {goals.name}: reward {s['reward']:.2f} vs "
          f"{s['partner_reward']:.2f} (agreed games {s['agreed_reward']:.2f} vs {s['agreed_partner_reward']:.2f}), "
          f"agreement {s['agreement']:.1f}%, Pareto-optimal {s['pareto']:.1f}%, {s['turns']:.1f} turns per game")
    print("\n" + results[0].transcript())
