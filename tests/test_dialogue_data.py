import json
from pathlib import Path

import pytest

from textvae.config import DataConfig, DialogueDataConfig, TokenizerConfig
from textvae.data.corpora import DataError, load_corpus
from textvae.data.dialogue import (
    DialogueData, collate_dialogues, context_only, context_windows, dialogue_examples, make_dialogue, train_overlap,
)
from textvae.data.pipeline import make_loader, prepare_data

DAILYDIALOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "dailydialog"

DIALOGUES = [
    {"turns": ["hello there .", "hi , how are you ?", "fine , thanks .", "good to hear ."],
     "acts": ["inform", "question", "inform", "inform"], "emotions": [0, 0, 4, 4]},
    {"turns": ["where is the station ?", "turn left at the bank ."], "acts": ["question", "directive"]},
    {"turns": ["i am tired .", "go to bed .", "ok i will .", "good night .", "night ."], "speakers": [0, 1, 0, 1, 0]},
]


def write_jsonl_corpus(folder: Path, dialogues=DIALOGUES) -> Path:
    """A tiny dialogue corpus in the JSONL format, the same dialogues in every split."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dialogues))
    return folder


def jsonl_config(folder, **kwargs) -> DataConfig:
    return DataConfig(corpus="dialogue_jsonl", data_dir=str(folder), tokenizer=TokenizerConfig(type="word"), **kwargs)


def test_jsonl_corpus_labels_speakers_and_utterances(tmp_path):
    corpus = load_corpus(jsonl_config(write_jsonl_corpus(tmp_path / "d")))
    assert len(corpus.dialogues["train"]) == 3 and len(corpus.train) == 11  # every utterance, for the tokenizer
    first, second, third = corpus.dialogues["train"]
    assert corpus.act_names == ["inform", "question", "directive"]
    assert first.acts == [0, 1, 0, 0] and first.emotions == [0, 0, 4, 4]
    assert second.emotions == [-1, -1] and third.acts == [-1] * 5  # missing labels are unknown
    assert first.speakers == [0, 1, 0, 1]


def test_examples_keep_only_earlier_turns_with_floor_marks(tmp_path):
    config = jsonl_config(write_jsonl_corpus(tmp_path / "d"), dialogue=DialogueDataConfig(max_turns=2))
    data = prepare_data(config, max_length=16)
    assert isinstance(data, DialogueData)
    assert len(data.datasets["train"]) == 3 + 1 + 4  # every utterance after the first is a response
    texts = data.texts["train"]
    assert texts[0].context == ["hello there ."] and texts[0].response == "hi , how are you ?"
    assert texts[2].context == ["hi , how are you ?", "fine , thanks ."]  # the last max_turns=2 turns only
    example = data.datasets["train"][2]
    assert example.floor == [1, 0]  # "hi , how are you ?" was said by the responder of "good to hear ."
    assert data.tokenizer.decode(example.response) == "good to hear ."


def test_collate_pads_turns_and_tokens(tmp_path):
    data = prepare_data(jsonl_config(write_jsonl_corpus(tmp_path / "d")), max_length=16)
    dataset = data.datasets["train"]
    batch = collate_dialogues([dataset[0], dataset[2]], 0, 1, 2)
    assert batch["context_ids"].shape[:2] == (2, 3)
    assert batch["context_turns"].tolist() == [1, 3]
    assert batch["context_lengths"][0].tolist() == [5, 0, 0]  # <bos> hello there . <eos>; padding turns are 0
    assert batch["context_ids"][0, 1:].eq(0).all()
    assert batch["response_ids"][:, 0].eq(1).all() and batch["response_lengths"].tolist() == [8, 6]
    assert batch["acts"].tolist() == [1, 0] and batch["emotions"].tolist() == [0, 4]
    loader = make_loader(dataset, data.tokenizer, 3, shuffle=True)
    assert sum(len(b["acts"]) for b in loader) == len(dataset)


def test_context_windows_start_at_the_second_utterance():
    dialogue = make_dialogue(["a", "b", "c", "d"])
    assert context_windows(dialogue, 2) == [([0], 1), ([0, 1], 2), ([1, 2], 3)]
    assert make_dialogue(["a", "b"], acts=[1]).acts == [-1, -1]  # misaligned labels are not guessed



@pytest.mark.parametrize("max_turns", [1, 2, 3, 10])
def test_disjoint_windows_model_every_turn_exactly_once(max_turns):
    for n in range(1, 31):
        windows = context_windows(make_dialogue([f"w{k}" for k in range(n)]), max_turns, disjoint=True)
        modelled = [k for (ctx, i), skip in zip(windows, context_only(windows)) for k in (ctx + [i])[skip:]]
        assert sorted(modelled) == list(range(n)), (n, windows)
        assert all(len(ctx) <= max_turns for ctx, _ in windows)
    # 23 turns, 10 per context: the last window [12..22] ends at the final turn and models only it
    windows = context_windows(make_dialogue([f"w{k}" for k in range(23)]), 10, disjoint=True)
    assert [i for _, i in windows] == [10, 21, 22] and windows[2][0] == list(range(12, 22))
    assert context_only(windows) == [0, 0, 10]


def test_disjoint_examples_carry_the_turns_an_earlier_window_models(tokenizer):
    dialogue = make_dialogue(["the cat sat"] * 5)
    examples, _, _ = dialogue_examples([dialogue], tokenizer, 16, 2, "truncate", disjoint=True)
    assert [len(e.context) for e in examples] == [2, 2] and [e.context_only for e in examples] == [0, 1]
    assert collate_dialogues(examples, 0, 1, 2)["context_only"].tolist() == [0, 1]
    overlapping, _, _ = dialogue_examples([dialogue], tokenizer, 16, 2, "truncate")
    assert [e.context_only for e in overlapping] == [0, 0, 0, 0]


def test_vhred_and_cvae_data_score_the_same_response_pairs(tmp_path):
    folder = write_jsonl_corpus(tmp_path / "d")
    cvae = prepare_data(jsonl_config(folder, dialogue=DialogueDataConfig(max_turns=2)), max_length=16)
    vhred = prepare_data(jsonl_config(folder, dialogue=DialogueDataConfig(max_turns=2, windows="disjoint")),
                         max_length=16)
    assert len(vhred.datasets["test"]) == 2 + 1 + 2 < len(cvae.datasets["test"])  # trained on windows
    for split in ("valid", "test"):
        (pairs, texts), (theirs, their_texts) = vhred.response_pairs(split), cvae.response_pairs(split)
        assert len(pairs) == 3 + 1 + 4  # every utterance after the first, with its up to 2 previous turns
        assert pairs.examples == theirs.examples and texts == their_texts
        assert [t.response for t in texts] == [t.response for t in cvae.texts[split]]
        assert all(e.context_only == 0 for e in pairs.examples)
    assert vhred.response_pairs("test")[0] is vhred.response_pairs("test")[0]  # built once
    assert cvae.response_pairs("test")[0] is cvae.datasets["test"]


def test_missing_folder_or_file_names_the_path(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="nowhere"):
        load_corpus(jsonl_config(tmp_path / "nowhere"))
    (tmp_path / "dd").mkdir()
    with pytest.raises(DataError, match="dialogues_train.txt"):
        load_corpus(DataConfig(corpus="dailydialog", data_dir=str(tmp_path / "dd")))
    monkeypatch.setenv("TEXTVAE_DATA", str(tmp_path))  # no data_dir: $TEXTVAE_DATA/dailydialog
    with pytest.raises(DataError, match=str(tmp_path / "dailydialog")):
        load_corpus(DataConfig(corpus="dailydialog"))
    monkeypatch.delenv("TEXTVAE_DATA")
    with pytest.raises(DataError, match="TEXTVAE_DATA"):
        load_corpus(DataConfig(corpus="dailydialog"))


@pytest.mark.skipif(not DAILYDIALOG.is_dir(), reason="DailyDialog is not in ../shared/data/dailydialog")
def test_dailydialog_official_splits_and_train_overlap():
    corpus = load_corpus(DataConfig(corpus="dailydialog", data_dir=str(DAILYDIALOG)))
    assert [len(corpus.dialogues[s]) for s in ("train", "valid", "test")] == [11118, 1000, 1000]
    assert [len(corpus.split(s)) for s in ("train", "valid", "test")] == [87171, 8069, 7740]  # as PROVENANCE.txt counts
    assert train_overlap(corpus.dialogues, "test") == 93 and train_overlap(corpus.dialogues, "valid") == 69
    assert corpus.info["misaligned_labels"] == 1
    first = corpus.dialogues["test"][0]
    assert first.turns[1] == "Some what ?" and first.acts[:3] == [2, 1, 2] and first.emotions[1] == 6
    dropped = load_corpus(DataConfig(corpus="dailydialog", data_dir=str(DAILYDIALOG),
                                     dialogue=DialogueDataConfig(drop_train_overlap=True)))
    assert [len(dropped.dialogues[s]) for s in ("train", "valid", "test")] == [11118, 931, 907]
