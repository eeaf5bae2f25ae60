"""Dialogue corpora (DailyDialog, a generic JSONL format) turned into (context, response) examples and padded
batches for dialogue models.

A dialogue is a list of utterances with, per utterance, a speaker and optional dialogue-act and emotion labels.
Each utterance from the second on is the response of one example whose context is the up to ``max_turns``
utterances before it, each marked by whether its speaker is the responder (the "floor" feature of Zhao et al.
2017). Batches hold the context as (B, turns, T) token ids with per-turn lengths and the number of real turns.

DailyDialog (Li et al. 2017), the official split files: ``{train,validation,test}/dialogues_{split}.txt`` with
utterances ending in ``__eou__``, and ``dialogues_act_{split}.txt`` / ``dialogues_emotion_{split}.txt`` with one
label per utterance (acts 1-4 inform, question, directive, commissive -> classes 0-3; emotions 0-6). Two facts to
know: 93 of the 1,000 test dialogues (and 69 of the 1,000 validation ones) also appear verbatim in train, so a model
has seen about 9% of the test set (``data.dialogue.drop_train_overlap`` drops them; published kgCVAE / DialogWAE
numbers keep them); and one training dialogue (line 7852) has 12 utterances but 11 labels, so its labels are
marked unknown (-1) rather than guessed.

JSONL, for one's own data: a folder with ``train.jsonl``, ``valid.jsonl`` (or ``validation``/``dev``) and
``test.jsonl``, one dialogue per line: ``{"turns": [...], "acts": [...], "emotions": [...], "speakers": [...]}``,
all but ``turns`` optional. Labels are class ids (ints from 0) or names (strings, numbered in order of first
appearance in train); speakers default to alternating.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import DataError
from ..registry import CORPORA
from .base import SPLITS, Corpus, PreparedData
from .batching import LengthReport, check_kept, fit_length, resolve_max_length, warn_length_report
from .corpora import default_data_dir, find_split_file, load_corpus, read_text
from .tokenization import Tokenizer, train_tokenizer

DAILYDIALOG_ACTS = ["inform", "question", "directive", "commissive"]
DAILYDIALOG_EMOTIONS = ["no emotion", "anger", "disgust", "fear", "happiness", "sadness", "surprise"]
DAILYDIALOG_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
UNKNOWN = -1  # a missing label; losses ignore it


@dataclass
class Dialogue:
    """One dialogue: utterances, and per utterance a speaker id and act / emotion class (-1 when unknown)."""

    turns: list[str]
    acts: list[int]
    emotions: list[int]
    speakers: list[int]


@dataclass(repr=False)
class DialogueCorpus(Corpus):
    """A corpus of dialogues; its sentence splits (``train`` ...) are all the utterances, for tokenizer training."""

    dialogues: dict[str, list[Dialogue]] = field(default_factory=dict)
    act_names: list[str] = field(default_factory=list)
    emotion_names: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.dialogues.get(s, []))}" for s in SPLITS)
        return f"DialogueCorpus({self.name!r}, dialogues: {sizes})"


def make_dialogue(
    turns: Sequence[str],
    acts: Optional[Sequence[int]] = None,
    emotions: Optional[Sequence[int]] = None,
    speakers: Optional[Sequence[int]] = None,
) -> Dialogue:
    """A ``Dialogue`` with missing or misaligned label lists marked unknown and speakers alternating by default."""
    n = len(turns)

    def labels(values):
        return list(values) if values is not None and len(values) == n else [UNKNOWN] * n

    return Dialogue(list(turns), labels(acts), labels(emotions), list(speakers) if speakers is not None else [i % 2 for i in range(n)])


def dialogue_corpus(name: str, dialogues: dict[str, list[Dialogue]], **info) -> DialogueCorpus:
    """A ``DialogueCorpus`` whose sentence splits list every utterance of each split."""
    utterances = {s: [t for d in dialogues[s] for t in d.turns] for s in SPLITS}
    names = {k: info.pop(k) for k in ("act_names", "emotion_names") if k in info}
    return DialogueCorpus(name=name, **utterances, dialogues=dialogues, info=info, **names)


def _corpus_dir(config: DataConfig, name: str) -> Path:
    """``data.data_dir``, else ``$TEXTVAE_DATA/<name>``; a DataError naming the folder when it is missing."""
    if config.data_dir:
        folder = Path(config.data_dir).expanduser()
    elif default_data_dir():
        folder = Path(default_data_dir()) / name
    else:
        raise DataError(f"corpus {name!r} needs data.data_dir (or the TEXTVAE_DATA environment variable)")
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    return folder


def _read_split_lines(path: Path, errors: str = "strict") -> list[str]:
    return [line for line in read_text(path, errors).splitlines() if line.strip()]


def drop_train_overlap(dialogues: dict[str, list[Dialogue]]) -> dict[str, int]:
    """Remove validation and test dialogues whose utterances equal a training dialogue's; returns the counts."""
    seen = {tuple(d.turns) for d in dialogues["train"]}
    dropped = {}
    for split in ("valid", "test"):
        kept = [d for d in dialogues[split] if tuple(d.turns) not in seen]
        dropped[split] = len(dialogues[split]) - len(kept)
        dialogues[split] = kept
    return dropped


def train_overlap(dialogues: dict[str, list[Dialogue]], split: str = "test") -> int:
    """How many dialogues of ``split`` appear verbatim in train (DailyDialog: 93 of 1,000 test dialogues)."""
    seen = {tuple(d.turns) for d in dialogues["train"]}
    return sum(tuple(d.turns) in seen for d in dialogues[split])


@CORPORA.register("dailydialog")
def load_dailydialog(config: DataConfig) -> DialogueCorpus:
    """DailyDialog's official splits from ``data.data_dir`` (or ``$TEXTVAE_DATA/dailydialog``)."""
    folder = _corpus_dir(config, "dailydialog")
    dialogues, misaligned = {}, 0
    for split, name in DAILYDIALOG_SPLITS.items():
        texts = _read_split_lines(folder / name / f"dialogues_{name}.txt", config.encoding_errors)
        acts = _read_split_lines(folder / name / f"dialogues_act_{name}.txt", config.encoding_errors)
        emotions = _read_split_lines(folder / name / f"dialogues_emotion_{name}.txt", config.encoding_errors)
        if not len(texts) == len(acts) == len(emotions):
            raise DataError(f"{folder / name}: {len(texts)} dialogues but {len(acts)} act and {len(emotions)} emotion lines")
        rows = []
        for text, act, emotion in zip(texts, acts, emotions):
            turns = [t.strip() for t in text.split("__eou__")]
            turns = [t for t in turns if t]
            act_ids = [int(a) - 1 for a in act.split()]
            emotion_ids = [int(e) for e in emotion.split()]
            misaligned += len(act_ids) != len(turns) or len(emotion_ids) != len(turns)
            rows.append(make_dialogue(turns, act_ids, emotion_ids))
        dialogues[split] = rows
    info = {"data_dir": str(folder), "misaligned_labels": misaligned, "test_in_train": train_overlap(dialogues)}
    if config.dialogue.drop_train_overlap:
        info["dropped_train_overlap"] = drop_train_overlap(dialogues)
    return dialogue_corpus("dailydialog", dialogues, act_names=list(DAILYDIALOG_ACTS),
                           emotion_names=list(DAILYDIALOG_EMOTIONS), **info)


def _label_ids(rows: list[dict], key: str, path: Path, names: list[str]) -> list[Optional[list[int]]]:
    """Label lists as class ids; string labels are numbered in order of first appearance (``names`` grows)."""
    out = []
    for i, row in enumerate(rows):
        values = row.get(key)
        if values is None:
            out.append(None)
            continue
        if not isinstance(values, list) or len(values) != len(row["turns"]):
            raise DataError(f"{path} line {i + 1}: {key!r} must be a list with one label per turn")
        ids = []
        for v in values:
            if isinstance(v, str):
                if v not in names:
                    names.append(v)
                ids.append(names.index(v))
            elif isinstance(v, int) and v >= 0:
                ids.append(v)
            else:
                raise DataError(f"{path} line {i + 1}: label {v!r} in {key!r} is neither a name nor a class id >= 0")
        out.append(ids)
    return out


@CORPORA.register("dialogue_jsonl")
def load_dialogue_jsonl(config: DataConfig) -> DialogueCorpus:
    """One dialogue per line of ``{train,valid,test}.jsonl``: ``{"turns": [...]}`` plus optional acts, emotions,
    speakers (see the module docstring)."""
    folder = _corpus_dir(config, "dialogue_jsonl")
    dialogues, act_names, emotion_names = {}, [], []
    for split in SPLITS:  # train first, so label names are numbered by their order in train
        path = find_split_file(folder, split, (".jsonl",))
        rows = []
        for i, line in enumerate(_read_split_lines(path, config.encoding_errors)):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {i + 1} is not valid JSON: {exc}") from None
            turns = row.get("turns") if isinstance(row, dict) else None
            if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
                raise DataError(f"{path} line {i + 1}: expected an object with \"turns\": a list of strings")
            rows.append(row)
        acts = _label_ids(rows, "acts", path, act_names)
        emotions = _label_ids(rows, "emotions", path, emotion_names)
        dialogues[split] = [
            make_dialogue([t.strip() for t in row["turns"]], a, e, row.get("speakers"))
            for row, a, e in zip(rows, acts, emotions)
        ]
    return dialogue_corpus(folder.name, dialogues, act_names=act_names, emotion_names=emotion_names,
                           data_dir=str(folder))


# ---------------------------------------------------------------- examples and batches


@dataclass
class DialogueExample:
    """Token ids of one (context, response) pair; ``floor[k]`` is 1 when context turn k is the responder's."""

    context: list[list[int]]
    floor: list[int]
    response: list[int]
    act: int = UNKNOWN
    emotion: int = UNKNOWN
    context_only: int = 0  # leading context turns an earlier window already models (disjoint windows; VHRED)


@dataclass
class DialogueText:
    """The text of an example, for evaluation: context turns (oldest first) and the reference response."""

    context: list[str]
    response: str
    act: int = UNKNOWN
    emotion: int = UNKNOWN


def context_windows(dialogue: Dialogue, max_turns: int, disjoint: bool = False) -> list[tuple[list[int], int]]:
    """(context turn indices, response index) for every response from the second utterance on; ``disjoint``: only
    every (max_turns + 1)-th utterance and the last (a one-turn dialogue: that turn with no context), so windows
    tile the dialogue instead of repeating turns; ``context_only`` says which turns of the last window an earlier
    window already models."""
    n = len(dialogue.turns)
    if disjoint and n == 1:
        return [([], 0)]
    responses = range(1, n)
    if disjoint:
        responses = sorted({i for i in range(max_turns, n, max_turns + 1)} | ({n - 1} if n > 1 else set()))
    return [(list(range(max(0, i - max_turns), i)), i) for i in responses]


def context_only(windows: Sequence[tuple[list[int], int]]) -> list[int]:
    """For each of one dialogue's disjoint windows, how many of its first context turns an earlier window already
    models: the last window ends at the dialogue's final turn, so it may start inside the previous one; VHRED reads
    those turns as context and leaves them out of rec and KL, so every turn is modelled exactly once."""
    skips, done = [], -1  # done: the last turn an earlier window modelled
    for context, response in windows:
        skips.append(sum(1 for k in context if k <= done))
        done = response
    return skips


def floor_marks(speakers: Sequence[int], context: Sequence[int], response: int) -> list[int]:
    """1 for context turns spoken by the responder, 0 for the other side's."""
    return [int(speakers[k] == speakers[response]) for k in context]


def collate_dialogues(examples: Sequence[DialogueExample], pad_id: int, bos_id: int, eos_id: int) -> dict[str, torch.Tensor]:
    """Examples -> ``context_ids`` (B, N, T) of ``<bos> w.. <eos> <pad>..`` per turn, ``context_lengths`` (B, N)
    (0 for padding turns), ``context_turns`` (B,), ``context_floor`` (B, N), ``response_ids`` (B, T') and
    ``response_lengths`` (B,), ``acts`` and ``emotions`` (B,) (-1 when unknown), ``context_only`` (B,) (the leading
    context turns an earlier window models)."""
    batch = len(examples)
    turns = max(1, max(len(e.context) for e in examples))
    width = max([len(u) + 2 for e in examples for u in e.context] or [2])
    context = np.full((batch, turns, width), pad_id, dtype=np.int64)
    context_lengths = np.zeros((batch, turns), dtype=np.int64)
    floor = np.zeros((batch, turns), dtype=np.int64)
    for b, example in enumerate(examples):
        for k, ids in enumerate(example.context):
            context[b, k, 0] = bos_id
            context[b, k, 1 : len(ids) + 1] = ids
            context[b, k, len(ids) + 1] = eos_id
            context_lengths[b, k] = len(ids) + 2
        floor[b, : len(example.floor)] = example.floor
    response_lengths = [len(e.response) + 2 for e in examples]
    response = np.full((batch, max(response_lengths)), pad_id, dtype=np.int64)
    response[:, 0] = bos_id
    for b, example in enumerate(examples):
        response[b, 1 : len(example.response) + 1] = example.response
        response[b, len(example.response) + 1] = eos_id
    return {
        "context_ids": torch.from_numpy(context),
        "context_lengths": torch.from_numpy(context_lengths),
        "context_turns": torch.tensor([len(e.context) for e in examples], dtype=torch.long),
        "context_floor": torch.from_numpy(floor),
        "response_ids": torch.from_numpy(response),
        "response_lengths": torch.tensor(response_lengths, dtype=torch.long),
        "acts": torch.tensor([e.act for e in examples], dtype=torch.long),
        "emotions": torch.tensor([e.emotion for e in examples], dtype=torch.long),
        "context_only": torch.tensor([e.context_only for e in examples], dtype=torch.long),
    }


@dataclass
class DialogueCollator:
    """A picklable collate function for DataLoader workers."""

    pad_id: int
    bos_id: int
    eos_id: int

    def __call__(self, examples: Sequence[DialogueExample]) -> dict[str, torch.Tensor]:
        return collate_dialogues(examples, self.pad_id, self.bos_id, self.eos_id)


class DialogueDataset(Dataset):
    """Tokenized (context, response) examples, batched by ``DialogueCollator``."""

    def __init__(self, examples: Sequence[DialogueExample]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> DialogueExample:
        return self.examples[index]

    def lengths(self) -> list[int]:
        """The longest utterance of each example (its batch width), for length bucketing."""
        return [max([len(e.response)] + [len(u) for u in e.context]) for e in self.examples]

    def collator(self, tokenizer: Tokenizer) -> DialogueCollator:
        return DialogueCollator(tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)


@dataclass
class DialogueData(PreparedData):
    """A dialogue corpus with its tokenizer, tokenized examples per split and their text (``texts``); with
    ``disjoint`` windows (VHRED) the examples are windows, and ``response_pairs`` gives every (context, response)
    pair for evaluation."""

    texts: dict[str, list[DialogueText]] = field(default_factory=dict)
    max_turns: int = 10
    overlong: str = "truncate"
    disjoint: bool = False
    pairs: dict[str, tuple[DialogueDataset, list[DialogueText]]] = field(default_factory=dict, repr=False)

    def sentences(self, split: str) -> list[str]:
        """The reference responses of ``split``, aligned with ``datasets[split]``."""
        return [t.response for t in self.texts[split]]

    def response_pairs(self, split: str) -> tuple[DialogueDataset, list[DialogueText]]:
        """Every response of ``split``'s dialogues with its up to ``max_turns`` previous turns as context, and their
        text: the examples every dialogue model is scored on, whatever windows it was trained with (the
        ``datasets[split]`` themselves unless windows are disjoint; built once, with the same tokenizer and length
        handling)."""
        if not self.disjoint:
            return self.datasets[split], self.texts[split]
        if split not in self.pairs:
            examples, texts, report = dialogue_examples(
                self.corpus.dialogues[split], self.tokenizer, self.max_length, self.max_turns, self.overlong, split
            )
            warn_length_report(report, f"{split} response pairs")
            check_kept(report, f"{split} response pair")
            self.pairs[split] = (DialogueDataset(examples), texts)
        return self.pairs[split]


def dialogue_examples(
    dialogues: Sequence[Dialogue], tokenizer: Tokenizer, max_length: int, max_turns: int, overlong: str,
    split: str = "train", disjoint: bool = False,
) -> tuple[list[DialogueExample], list[DialogueText], LengthReport]:
    """Examples of every response (of every window's last turn with ``disjoint``); responses longer than
    ``max_length`` follow ``overlong`` (the report counts them), context utterances are truncated to ``max_length``."""
    windows = []  # (dialogue, context, response, leading context turns modelled by an earlier window)
    for d in dialogues:
        tiles = context_windows(d, max_turns, disjoint)
        skips = context_only(tiles) if disjoint else [0] * len(tiles)
        windows += [(d, ctx, i, skip) for (ctx, i), skip in zip(tiles, skips)]
    ids = {id(d): tokenizer.batch_encode(d.turns) for d in dialogues}
    responses = [ids[id(d)][i] for d, _, i, _ in windows]
    kept, index, report = fit_length(responses, max_length, overlong, what=f"{split} response")
    examples, texts = [], []
    for response, j in zip(kept, index):
        d, ctx, i, skip = windows[j]
        context = [ids[id(d)][k][:max_length] for k in ctx]
        examples.append(
            DialogueExample(context, floor_marks(d.speakers, ctx, i), response, d.acts[i], d.emotions[i], skip)
        )
        texts.append(DialogueText([d.turns[k] for k in ctx], d.turns[i], d.acts[i], d.emotions[i]))
    return examples, texts, report


def prepare_dialogue_data(
    config: DataConfig, max_length: Optional[int] = None, tokenizer: Optional[Tokenizer] = None,
    corpus: Optional[DialogueCorpus] = None, overlong: str = "truncate",
) -> DialogueData:
    """Load the dialogue corpus, train the tokenizer on its training utterances (unless one is given) and build
    (context, response) examples per split; ``max_length=None`` derives the limit from the training utterances."""
    corpus = corpus if corpus is not None else load_corpus(config)
    for split in SPLITS:
        if not corpus.dialogues[split]:
            raise DataError(f"the {split} split of corpus {corpus.name!r} has no dialogue")
    if tokenizer is None:
        tokenizer = train_tokenizer(corpus.train, config.tokenizer)
    train_lengths = [len(ids) for d in corpus.dialogues["train"] for ids in tokenizer.batch_encode(d.turns)]
    limit, note = resolve_max_length(max_length, train_lengths, what="utterance")
    datasets, reports, texts = {}, {}, {}
    disjoint = config.dialogue.windows == "disjoint"
    for split in SPLITS:
        examples, texts[split], reports[split] = dialogue_examples(
            corpus.dialogues[split], tokenizer, limit, config.dialogue.max_turns, overlong, split, disjoint=disjoint,
        )
        warn_length_report(reports[split], split)
        check_kept(reports[split], split)
        datasets[split] = DialogueDataset(examples)
    return DialogueData(corpus, tokenizer, datasets, reports, max_length=limit, length_note=note, texts=texts,
                        max_turns=config.dialogue.max_turns, overlong=overlong, disjoint=disjoint)
