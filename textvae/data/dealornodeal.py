"""Deal or No Deal (Lewis et al. 2017): negotiation dialogues with private goals, as the ``dealornodeal`` corpus.

Two agents see the same items (books, hats, balls; 1-4 of each) with private values (each agent's total 10), talk,
and each selects a split; matching selections give each agent the value of its share, anything else 0.

Files, in ``data.data_dir`` (or ``$TEXTVAE_DATA/dealornodeal``), as FAIR's end-to-end-negotiator and LaRL ship them:

- ``val.txt``, ``test.txt``: one dialogue per line, seen from one side ("YOU"); every dialogue appears twice, once
  from each side: ``<input> c0 v0 c1 v1 c2 v2 </input> <dialogue> YOU: ... <eos> THEM: ... <eos> YOU: <selection>
  </dialogue> <output> item0=a item1=b item2=c item0=d item1=e item2=f </output> <partner_input> ... </partner_input>``
  (output: YOU's share, then THEM's; or six ``<disagree>``, ``<no_agreement>`` or ``<disconnect>``).
- ``train.txt`` is **missing** from every public snapshot. The training split is derived instead from ``data.txt``
  (all 12,234 raw dialogue sides, in another format: ``c0 v0 c1 v1 c2 v2 YOU: ... <eos> ... <selection> item0=a
  item1=b item2=c <eos> reward=N agree|disagree <partner's 6 ints>``), minus every dialogue of val and test, each
  line re-formatted to the val/test format (``format_line``). A dialogue is matched by ``dialogue_key``: the two
  sides' inputs as an unordered pair and the utterance texts in order without speaker tags, the same for both
  sides, so both sides of a val/test dialogue leave train. The derived split is *not* guaranteed identical to
  FAIR's train.txt, and figures trained on it are not strictly comparable with published ones.
- ``selfplay.txt`` (and ``selfplay_eval.txt``): goal pairs for self-play, two lines ``c0 v0 c1 v1 c2 v2`` per game.

A malformed line is a ``DataError`` naming the file and line. This module parses only; the game's rules (points,
agreement, Pareto optimality, self-play) are ``textvae.tasks.negotiation``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from pathlib import Path
from typing import Optional, Sequence

from ..config import DataConfig
from ..errors import DataError
from ..registry import CORPORA
from .base import SPLITS
from .batching import check_kept, fit_length, resolve_max_length, warn_length_report
from .corpora import load_corpus, read_text
from .dialogue import (
    UNKNOWN, Dialogue, DialogueCollator, DialogueCorpus, DialogueData, DialogueDataset, DialogueExample, DialogueText,
    _corpus_dir, collate_dialogues, dialogue_corpus, make_dialogue,
)
from .tokenization import Tokenizer, train_tokenizer

NUM_ITEMS = 3
ITEM_NAMES = ("book", "hat", "ball")
SELECTION = "<selection>"
OUTCOMES = ("agree", "disagree", "no_agreement", "disconnect")  # agree: both sides selected the same split
YOU, THEM = 1, 0  # speaker ids: 1 is the side the line is written from (the floor of its responses)
SPLIT_FILES = {"valid": "val.txt", "test": "test.txt"}
RAW_FILE = "data.txt"


@dataclass(frozen=True)
class Goal:
    """One side's view of the items: ``counts`` and its private ``values`` per item (book, hat, ball)."""

    counts: tuple[int, ...]
    values: tuple[int, ...]

    def tokens(self) -> list[int]:
        """``c0 v0 c1 v1 c2 v2``, the files' order."""
        return [x for pair in zip(self.counts, self.values) for x in pair]


@dataclass
class NegotiationDialogue:
    """One side of a dialogue: its goal, the partner's values, the turns (``speakers``: YOU=1, THEM=0; the final
    turn is ``<selection>``), the outcome and, when agreed, ``selection``: YOU's items then THEM's (6 ints)."""

    goal: Goal
    partner: Goal
    turns: list[str]
    speakers: list[int]
    outcome: str
    selection: Optional[tuple[int, ...]] = None

    @property
    def own_items(self) -> Optional[tuple[int, ...]]:
        return None if self.selection is None else self.selection[:NUM_ITEMS]


def parse_goal(tokens: Sequence[str], where: str = "goal") -> Goal:
    """``c0 v0 c1 v1 c2 v2`` (strings or ints) -> a ``Goal``; a DataError naming ``where`` when malformed."""
    if len(tokens) != 2 * NUM_ITEMS:
        raise DataError(f"{where}: expected {2 * NUM_ITEMS} numbers (count value per item), got {len(tokens)}: "
                        f"{' '.join(map(str, tokens))!r}")
    try:
        numbers = [int(t) for t in tokens]
    except ValueError:
        raise DataError(f"{where}: expected numbers, got {' '.join(map(str, tokens))!r}") from None
    if any(n < 0 for n in numbers):
        raise DataError(f"{where}: counts and values must not be negative, got {numbers}")
    return Goal(tuple(numbers[0::2]), tuple(numbers[1::2]))


_ITEM = re.compile(r"^item(\d)=(\d+)$")


def parse_items(tokens: Sequence[str], where: str = "selection") -> tuple[int, ...]:
    """``item0=a item1=b item2=c [item0=d ...]`` -> (a, b, c[, d, ...]); each triple must name item0..item2 in order."""
    out = []
    for k, token in enumerate(tokens):
        m = _ITEM.match(token)
        if m is None or int(m.group(1)) != k % NUM_ITEMS:
            raise DataError(f"{where}: expected item{k % NUM_ITEMS}=<count>, got {token!r}")
        out.append(int(m.group(2)))
    return tuple(out)


def split_turns(text: str, where: str) -> tuple[list[str], list[int]]:
    """``YOU: w.. <eos> THEM: w.. <eos> ... X: <selection>`` -> (utterances, speakers); the last is ``<selection>``."""
    turns, speakers = [], []
    for part in text.split("<eos>"):
        part = part.strip()
        if not part:
            continue
        tag, _, words = part.partition(" ")
        if tag not in ("YOU:", "THEM:"):
            raise DataError(f"{where}: a turn must start with YOU: or THEM:, got {part[:40]!r}")
        words = words.strip()
        if not words:
            raise DataError(f"{where}: an empty {tag[:-1]} turn")
        turns.append(words)
        speakers.append(YOU if tag == "YOU:" else THEM)
    if not turns or turns[-1] != SELECTION:
        raise DataError(f"{where}: the dialogue must end with a turn that is {SELECTION}")
    return turns, speakers


def _tagged(line: str, tag: str, where: str) -> str:
    start, end = f"<{tag}>", f"</{tag}>"
    i, j = line.find(start), line.find(end)
    if i < 0 or j < i:
        raise DataError(f"{where}: no {start} ... {end} section")
    return line[i + len(start) : j].strip()


def parse_line(line: str, where: str = "line") -> NegotiationDialogue:
    """One val/test line (``<input> .. </input> <dialogue> .. </dialogue> <output> .. </output> <partner_input> ..
    </partner_input>``) -> a ``NegotiationDialogue``; a DataError naming ``where`` when malformed."""
    goal = parse_goal(_tagged(line, "input", where).split(), f"{where}: <input>")
    partner = parse_goal(_tagged(line, "partner_input", where).split(), f"{where}: <partner_input>")
    if partner.counts != goal.counts:
        raise DataError(f"{where}: <input> counts {goal.counts} and <partner_input> counts {partner.counts} differ")
    turns, speakers = split_turns(_tagged(line, "dialogue", where), where)
    output = _tagged(line, "output", where).split()
    if len(output) != 2 * NUM_ITEMS:
        raise DataError(f"{where}: <output> must hold {2 * NUM_ITEMS} entries, got {len(output)}")
    if output[0].startswith("<"):
        outcome = output[0][1:-1]
        if outcome not in OUTCOMES[1:] or any(o != output[0] for o in output):
            raise DataError(f"{where}: <output> {' '.join(output)!r} is neither a split nor six equal outcome marks")
        return NegotiationDialogue(goal, partner, turns, speakers, outcome)
    selection = parse_items(output, f"{where}: <output>")
    return NegotiationDialogue(goal, partner, turns, speakers, "agree", selection)


def parse_raw_line(line: str, where: str = "line") -> NegotiationDialogue:
    """One ``data.txt`` line -> a ``NegotiationDialogue`` in the val/test sense: an agreed split gives YOU's
    selection and its complement for THEM (agreement means they add up to the counts); the others give no split.
    ``disagree`` (mismatched selections), ``no agreement`` and ``disconnect`` map to ``<disagree>``,
    ``<no_agreement>`` and ``<disconnect>``, as val.txt writes the same dialogues."""
    tokens = line.split()
    if len(tokens) < 2 * NUM_ITEMS * 2 + 2:
        raise DataError(f"{where}: too short for a data.txt line (6 numbers, turns, selection, 6 numbers)")
    goal = parse_goal(tokens[: 2 * NUM_ITEMS], f"{where}: input")
    partner = parse_goal(tokens[-2 * NUM_ITEMS :], f"{where}: partner input")
    body = " ".join(tokens[2 * NUM_ITEMS : -2 * NUM_ITEMS])
    cut = body.find(SELECTION)
    if cut < 0:
        raise DataError(f"{where}: no {SELECTION} in the dialogue")
    turns, speakers = split_turns(body[: cut + len(SELECTION)], where)
    tail = body[cut + len(SELECTION) :].split()
    if "<eos>" not in tail or len(tail) < tail.index("<eos>") + 3:
        raise DataError(f"{where}: expected '<selection> ... <eos> reward=.. agree|disagree', got {' '.join(tail)!r}")
    eos = tail.index("<eos>")
    chosen, flag = tail[:eos], tail[-1]
    if flag not in ("agree", "disagree"):
        raise DataError(f"{where}: expected agree or disagree before the partner input, got {flag!r}")
    if flag == "disagree":  # the two sides' choices differ, whatever this side chose
        return NegotiationDialogue(goal, partner, turns, speakers, "disagree")
    if chosen == ["no", "agreement"]:
        return NegotiationDialogue(goal, partner, turns, speakers, "no_agreement")
    if chosen == ["disconnect"]:
        return NegotiationDialogue(goal, partner, turns, speakers, "disconnect")
    items = parse_items(chosen, f"{where}: selection")
    if len(items) != NUM_ITEMS or any(i > c for i, c in zip(items, goal.counts)):
        raise DataError(f"{where}: selection {chosen} does not fit the counts {goal.counts}")
    rest = tuple(c - i for c, i in zip(goal.counts, items))
    return NegotiationDialogue(goal, partner, turns, speakers, "agree", items + rest)


def format_line(d: NegotiationDialogue) -> str:
    """A ``NegotiationDialogue`` in the val/test line format (``parse_line``'s inverse)."""
    dialogue = " <eos> ".join(f"{'YOU' if s == YOU else 'THEM'}: {t}" for t, s in zip(d.turns, d.speakers))
    if d.selection is not None:
        output = " ".join(f"item{k % NUM_ITEMS}={n}" for k, n in enumerate(d.selection))
    else:
        output = " ".join([f"<{d.outcome}>"] * 2 * NUM_ITEMS)
    goal, partner = " ".join(map(str, d.goal.tokens())), " ".join(map(str, d.partner.tokens()))
    return (f"<input> {goal} </input> <dialogue> {dialogue} </dialogue> <output> {output} </output> "
            f"<partner_input> {partner} </partner_input>")


def dialogue_key(d: NegotiationDialogue) -> tuple:
    """The same for both sides of one dialogue: the two inputs as an unordered pair, and the utterances in order
    without speaker tags."""
    inputs = tuple(sorted([tuple(d.goal.tokens()), tuple(d.partner.tokens())]))
    return inputs, tuple(d.turns)


def read_dialogues(path: "str | Path", raw: bool = False, errors: str = "strict") -> list[NegotiationDialogue]:
    """Every line of a val/test file (``raw``: of data.txt); a DataError names the file and line of a bad one."""
    parse = parse_raw_line if raw else parse_line
    out = []
    for number, line in enumerate(read_text(path, errors).splitlines(), start=1):
        if line.strip():
            out.append(parse(line, f"{path} line {number}"))
    return out


def read_goal_pairs(path: "str | Path", errors: str = "strict") -> list[tuple[Goal, Goal]]:
    """``selfplay.txt``-style files: two goal lines per game (same counts) -> [(goal_a, goal_b)]."""
    lines = [(n, line) for n, line in enumerate(read_text(path, errors).splitlines(), start=1) if line.strip()]
    if len(lines) % 2:
        raise DataError(f"{path}: {len(lines)} goal lines, an odd number; a game needs two (one per side)")
    pairs = []
    for (n_a, a), (n_b, b) in zip(lines[0::2], lines[1::2]):
        goal_a = parse_goal(a.split(), f"{path} line {n_a}")
        goal_b = parse_goal(b.split(), f"{path} line {n_b}")
        if goal_a.counts != goal_b.counts:
            raise DataError(f"{path} line {n_b}: counts {goal_b.counts} differ from line {n_a}'s {goal_a.counts}")
        pairs.append((goal_a, goal_b))
    return pairs


def dialogue_goal_pairs(dialogues: Sequence[NegotiationDialogue]) -> list[tuple[Goal, Goal]]:
    """One (goal, partner goal) pair per dialogue, from the side that comes first in the file (val.txt and
    test.txt hold each dialogue twice, once from each side): the test goals to play."""
    seen, pairs = set(), []
    for d in dialogues:
        key = dialogue_key(d)
        if key not in seen:
            seen.add(key)
            pairs.append((d.goal, d.partner))
    return pairs


def derive_train(raw: Sequence[NegotiationDialogue], held_out: Sequence[NegotiationDialogue]) -> list[NegotiationDialogue]:
    """``raw`` (data.txt) without every dialogue that ``held_out`` (val and test) holds, matched by ``dialogue_key``."""
    seen = {dialogue_key(d) for d in held_out}
    return [d for d in raw if dialogue_key(d) not in seen]


@dataclass(repr=False)
class NegotiationCorpus(DialogueCorpus):
    """The Deal or No Deal splits: ``games[split]`` the parsed sides, ``dialogues[split]`` the same as plain
    ``Dialogue``s (turns and speakers, YOU=1), row-aligned."""

    games: dict[str, list[NegotiationDialogue]] = field(default_factory=dict)


def negotiation_corpus(name: str, games: dict[str, list[NegotiationDialogue]], **info) -> NegotiationCorpus:
    dialogues: dict[str, list[Dialogue]] = {
        s: [make_dialogue(g.turns, speakers=g.speakers) for g in rows] for s, rows in games.items()
    }
    base = dialogue_corpus(name, dialogues, **info)
    return NegotiationCorpus(name=base.name, train=base.train, valid=base.valid, test=base.test, info=base.info,
                             dialogues=dialogues, games=games)


@CORPORA.register("dealornodeal")
def load_dealornodeal(config: DataConfig) -> NegotiationCorpus:
    """val.txt and test.txt as they are; train derived from data.txt minus val/test (see the module docstring)."""
    folder = _corpus_dir(config, "dealornodeal")
    games = {split: read_dialogues(folder / name, errors=config.encoding_errors) for split, name in SPLIT_FILES.items()}
    raw = read_dialogues(folder / RAW_FILE, raw=True, errors=config.encoding_errors)
    games["train"] = derive_train(raw, games["valid"] + games["test"])
    info = {"data_dir": str(folder), "train_source": f"{RAW_FILE} minus val/test dialogues ({len(raw)} - "
            f"{len(raw) - len(games['train'])} lines); train.txt is missing"}
    return negotiation_corpus("dealornodeal", {s: games[s] for s in ("train", "valid", "test")}, **info)


# ---------------------------------------------------------------- examples and batches


@dataclass
class NegotiationExample(DialogueExample):
    """A ``DialogueExample`` from one side of a dialogue, with that side's ``goal`` (6 ints) and, on the example
    that ends the dialogue (``select``), the split it chose (``items``, 3 ints; -1 without an agreed split).
    ``respond`` 0 marks an example whose response is THEM's closing ``<selection>``: read for the selection head,
    not modelled by the decoder; ``response_floor`` is 1 for YOU's responses."""

    goal: list[int] = field(default_factory=list)
    items: list[int] = field(default_factory=lambda: [UNKNOWN] * NUM_ITEMS)
    select: int = 0
    respond: int = 1
    response_floor: int = YOU


def negotiation_windows(game: NegotiationDialogue, max_turns: int) -> list[tuple[list[int], int, bool, bool]]:
    """(context turn indices, response index, respond, select) for every YOU turn, plus THEM's closing turn as a
    selection-only example when THEM closes the dialogue; the last example of a side reads the whole dialogue."""
    last = len(game.turns) - 1
    rows = [(list(range(max(0, i - max_turns), i)), i, True, i == last)
            for i, s in enumerate(game.speakers) if s == YOU]
    if game.speakers[last] != YOU:
        rows.append((list(range(max(0, last - max_turns), last)), last, False, True))
    return rows


def negotiation_examples(
    games: Sequence[NegotiationDialogue], tokenizer: Tokenizer, max_length: int, max_turns: int, overlong: str,
    split: str = "train",
) -> tuple[list[NegotiationExample], list[DialogueText], object]:
    """Examples of every side of every dialogue (both sides are in the files: Lewis et al. train on both);
    responses longer than ``max_length`` follow ``overlong``, context utterances are truncated to it."""
    windows = [(g, *w) for g in games for w in negotiation_windows(g, max_turns)]
    ids = {id(g): tokenizer.batch_encode(g.turns) for g in games}
    kept, index, report = fit_length([ids[id(w[0])][w[2]] for w in windows], max_length, overlong,
                                     what=f"{split} response")
    examples, texts = [], []
    for response, j in zip(kept, index):
        g, ctx, i, respond, select = windows[j]
        items = list(g.own_items) if select and g.own_items is not None else [UNKNOWN] * NUM_ITEMS
        examples.append(NegotiationExample(
            [ids[id(g)][k][:max_length] for k in ctx], [int(g.speakers[k] == YOU) for k in ctx], response, goal=g.goal.tokens(), items=items,
            select=int(select), respond=int(respond), response_floor=g.speakers[i],
        ))
        texts.append(DialogueText([g.turns[k] for k in ctx], g.turns[i]))
    return examples, texts, report


def collate_negotiation(examples: Sequence[NegotiationExample], pad_id: int, bos_id: int, eos_id: int) -> dict[str, torch.Tensor]:
    """``collate_dialogues`` plus ``goal`` (B, 6), ``items`` (B, 3), ``select``, ``respond``, ``response_floor`` (B,)."""
    batch = collate_dialogues(examples, pad_id, bos_id, eos_id)
    batch["goal"] = torch.tensor([e.goal for e in examples], dtype=torch.long)
    batch["items"] = torch.tensor([e.items for e in examples], dtype=torch.long)
    for key in ("select", "respond", "response_floor"):
        batch[key] = torch.tensor([getattr(e, key) for e in examples], dtype=torch.long)
    return batch


class NegotiationCollator(DialogueCollator):
    """``DialogueCollator`` with the negotiation fields (``collate_negotiation``)."""

    def __call__(self, examples: Sequence[NegotiationExample]) -> dict[str, torch.Tensor]:
        return collate_negotiation(examples, self.pad_id, self.bos_id, self.eos_id)


class NegotiationDataset(DialogueDataset):
    """Tokenized negotiation examples, batched by ``NegotiationCollator``."""

    def collator(self, tokenizer: Tokenizer) -> NegotiationCollator:
        return NegotiationCollator(tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)


def prepare_negotiation_data(
    config: DataConfig, max_length: Optional[int] = None, tokenizer: Optional[Tokenizer] = None,
    corpus: Optional[NegotiationCorpus] = None, overlong: str = "truncate",
) -> DialogueData:
    """``prepare_dialogue_data`` for Deal or No Deal: a tokenizer trained on the training utterances (unless one is
    given) and ``NegotiationExample``s per split (contexts of up to ``data.dialogue.max_turns`` turns)."""
    corpus = corpus if corpus is not None else load_corpus(config)
    if tokenizer is None:
        tokenizer = train_tokenizer(corpus.train, config.tokenizer)
    train_lengths = [len(ids) for g in corpus.games["train"] for ids in tokenizer.batch_encode(g.turns)]
    limit, note = resolve_max_length(max_length, train_lengths, what="utterance")
    datasets, reports, texts = {}, {}, {}
    for split in SPLITS:
        if not corpus.games[split]:
            raise DataError(f"the {split} split of corpus {corpus.name!r} has no dialogue")
        examples, texts[split], reports[split] = negotiation_examples(
            corpus.games[split], tokenizer, limit, config.dialogue.max_turns, overlong, split)
        warn_length_report(reports[split], split)
        check_kept(reports[split], split)
        datasets[split] = NegotiationDataset(examples)
    return DialogueData(corpus, tokenizer, datasets, reports, max_length=limit, length_note=note, texts=texts,
                        max_turns=config.dialogue.max_turns, overlong=overlong)
