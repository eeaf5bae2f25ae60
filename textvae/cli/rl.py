"""``scripts/train_negotiation.py --stage rl``: reinforcement learning of a supervised Deal or No Deal agent by
self-play against a frozen supervised word-level partner (``training.rl``): latent RL for a ``larl`` folder, word RL
with interleaved supervised updates for a ``negotiation_word`` folder.

The output folder holds ``rl_state.safetensors`` (the exact resume state; ``--resume`` continues from it), ``model/`` (the
agent's model folder, rewritten at every save) and ``history.json`` (mean learner reward per update, the settings).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .common import command_warnings

MODEL_FOLDER = "model"
HISTORY_FILE = "history.json"


def build_parser() -> argparse.ArgumentParser:
    from ..training.rl import RLConfig

    parser = argparse.ArgumentParser(prog="train_negotiation.py --stage rl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the supervised agent's model folder (larl or negotiation_word)")
    parser.add_argument("--partner", help="the frozen partner's model folder, a supervised negotiation_word agent "
                        "(default: --model, when that is a word-level agent)")
    parser.add_argument("--data-dir", help="the Deal or No Deal folder: selfplay.txt's goals, and the training "
                        "dialogues for word RL's supervised updates")
    parser.add_argument("--goals", help="goal pairs to play (default: DATA_DIR/selfplay.txt)")
    parser.add_argument("--output-dir", required=True, help="where rl_state.safetensors, model/ and history.json go")
    parser.add_argument("--episodes", type=int, help="stop after this many episodes (default: rl.passes passes)")
    parser.add_argument("--save-every", type=int, default=50, help="updates between saves (default 50)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/rl_state.safetensors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = parser.add_argument_group("RL settings (training.rl.RLConfig; LaRL's by default)")
    for f in dataclasses.fields(RLConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            group.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=f.default,
                               metavar="BOOL", help=f"default {f.default}")
        else:
            group.add_argument(flag, type=float if "float" in str(f.type) else int, default=f.default,
                               help=f"default {f.default}")
    return parser


# what a resume must keep: the run it continues played these games (the seed orders the goal pairs and draws who
# starts) with this agent against this partner; the optimisation settings may change (they are the ones given now)
RESUME_MUST_KEEP = ("model", "partner", "goal_pairs", "kind", "seed", "max_turns", "temperature")


def check_rl_resume(saved: dict, now: dict, out: Path) -> None:
    """A ``CheckpointError`` naming each setting a resume of the RL run in ``out`` changed that it must keep."""
    from ..errors import CheckpointError

    def same(key: str) -> bool:  # folders compare resolved: history.json files before this check kept them as given
        if key in ("model", "partner"):
            return Path(saved[key]).resolve() == Path(now[key]).resolve()
        return saved[key] == now[key]

    changed = [f"{key}: {saved[key]!r} -> {now[key]!r}" for key in RESUME_MUST_KEEP if key in saved and not same(key)]
    if changed:
        raise CheckpointError(f"--resume continues the RL run in {out}, which was started with other settings ("
                              + "; ".join(changed) + "): give the run's own settings, or a new --output-dir")


def rl_main(argv: Optional[Sequence[str]] = None) -> int:
    with command_warnings():
        return _rl_main(argv)


def _rl_main(argv) -> int:
    from ..errors import TextVAEError

    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except TextVAEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import torch

    from ..config import DataConfig, DialogueDataConfig
    from ..data.dealornodeal import prepare_negotiation_data, read_goal_pairs
    from ..errors import InputError
    from ..models import load_pretrained
    from ..models.negotiation import NegotiationAgent, NegotiationWordModel
    from ..training.rl import STATE_FILE, RLConfig, is_latent, train_rl

    config = RLConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RLConfig)})
    torch.manual_seed(config.seed)
    model = load_pretrained(args.model)
    latent = is_latent(model)
    if args.partner is None and latent:
        raise InputError("latent RL plays against a frozen supervised word-level agent: give its folder as --partner")
    partner_model = load_pretrained(args.partner or args.model)
    if not isinstance(partner_model, NegotiationWordModel):
        raise InputError(f"--partner must be a negotiation_word model folder, not a {partner_model.config.model_type}")
    for p in partner_model.parameters():
        p.requires_grad_(False)
    if args.goals is None and args.data_dir is None:
        raise InputError("give --data-dir (the Deal or No Deal folder) or --goals")
    pairs = read_goal_pairs(args.goals or Path(args.data_dir) / "selfplay.txt")
    supervised = None
    if not latent and config.supervised_every:
        if args.data_dir is None:
            raise InputError("word RL's supervised updates read the training dialogues: give --data-dir "
                             "(or --supervised-every 0)")
        data = prepare_negotiation_data(DataConfig(corpus="dealornodeal", data_dir=args.data_dir,
                                                   dialogue=DialogueDataConfig(max_turns=20)),
                                        model.config.max_length, tokenizer=model.tokenizer)
        supervised = data.datasets["train"]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    partner = NegotiationAgent(partner_model, temperature=config.temperature, seed=config.seed + 2)
    settings = {"model": str(Path(args.model).resolve()), "partner": str(Path(args.partner or args.model).resolve()),
                "goal_pairs": len(pairs), "kind": "latent" if latent else "word", **dataclasses.asdict(config)}
    if args.resume and (out / STATE_FILE).is_file() and (out / HISTORY_FILE).is_file():
        check_rl_resume(json.loads((out / HISTORY_FILE).read_text()).get("settings", {}), settings, out)

    def on_save(state) -> None:
        model.save_pretrained(out / MODEL_FOLDER)
        (out / HISTORY_FILE).write_text(json.dumps({"settings": settings, "episode": state.episode,
                                                    "update": state.update, "history": state.history}))

    start = time.perf_counter()
    resumed = 0
    if args.resume and (out / STATE_FILE).is_file():
        resumed = json.loads((out / HISTORY_FILE).read_text())["episode"] if (out / HISTORY_FILE).is_file() else 0
    print(f"{'latent' if latent else 'word'} RL of {args.model} against {args.partner or args.model} on {len(pairs)} "
          f"goal pairs; {config}", flush=True)
    state = train_rl(model, partner, pairs, config, state_path=out / STATE_FILE, resume=args.resume,
                     save_every=args.save_every, supervised_data=supervised, max_episodes=args.episodes,
                     progress=not args.no_progress, on_save=on_save)
    seconds = time.perf_counter() - start
    h = state.history
    tenth = max(1, len(h) // 10)
    played = state.episode - resumed
    print(f"\n{state.episode} episodes in {state.update} updates ({played} this run in {seconds:.1f} s, "
          f"{played / max(seconds, 1e-9):.2f} episodes/s); mean learner reward over the first {tenth} updates "
          f"{sum(h[:tenth]) / tenth:.2f}, over the last {tenth} {sum(h[-tenth:]) / tenth:.2f}")
    print(f"model folder: {out / MODEL_FOLDER}")
    return 0
