"""The Deal or No Deal parser: both file formats, the derived train split, malformed lines (file and line named),
examples and batches; and every line of the staged files."""

from pathlib import Path

import pytest

from textvae.config import DataConfig, DialogueDataConfig, TokenizerConfig
from textvae.data.corpora import load_corpus
from textvae.data.dealornodeal import (
    THEM, YOU, dialogue_goal_pairs, format_line, parse_line, parse_raw_line, read_dialogues, read_goal_pairs,
)
from textvae.data.pipeline import make_loader, prepare_data
from textvae.errors import DataError

STAGED = Path(__file__).resolve().parents[2] / "shared" / "data" / "dealornodeal"

VAL_A = ("<input> 3 3 3 0 1 1 </input> <dialogue> YOU: i want the books <eos> THEM: take two books and the ball "
         "<eos> YOU: deal <eos> THEM: <selection> </dialogue> <output> item0=2 item1=0 item2=1 item0=1 item1=3 "
         "item2=0 </output> <partner_input> 3 2 3 1 1 1 </partner_input>")
VAL_B = ("<input> 3 2 3 1 1 1 </input> <dialogue> THEM: i want the books <eos> YOU: take two books and the ball "
         "<eos> THEM: deal <eos> YOU: <selection> </dialogue> <output> item0=1 item1=3 item2=0 item0=2 item1=0 "
         "item2=1 </output> <partner_input> 3 3 3 0 1 1 </partner_input>")
TEST_A = ("<input> 1 6 3 0 2 2 </input> <dialogue> YOU: the book for me <eos> THEM: <selection> </dialogue> "
          "<output> <disagree> <disagree> <disagree> <disagree> <disagree> <disagree> </output> "
          "<partner_input> 1 2 3 2 2 1 </partner_input>")
RAW = [  # data.txt: the val dialogue (both sides), the test one, and one training dialogue (both sides)
    "3 3 3 0 1 1 YOU: i want the books <eos> THEM: take two books and the ball <eos> YOU: deal <eos> THEM: "
    "<selection> item0=2 item1=0 item2=1 <eos> reward=8 agree 3 2 3 1 1 1",
    "3 2 3 1 1 1 THEM: i want the books <eos> YOU: take two books and the ball <eos> THEM: deal <eos> YOU: "
    "<selection> item0=1 item1=3 item2=0 <eos> reward=5 agree 3 3 3 0 1 1",
    "1 6 3 0 2 2 YOU: the book for me <eos> THEM: <selection> no agreement <eos> reward=no agreement disagree "
    "1 2 3 2 2 1",
    "1 0 4 2 1 2 YOU: i would like 4 hats <eos> THEM: deal <eos> YOU: <selection> item0=0 item1=4 item2=0 <eos> "
    "reward=8 agree 1 4 4 1 1 2",
    "1 4 4 1 1 2 THEM: i would like 4 hats <eos> YOU: deal <eos> THEM: <selection> item0=1 item1=0 item2=1 <eos> "
    "reward=6 agree 1 0 4 2 1 2",
]


def write_folder(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "val.txt").write_text(VAL_A + "\n" + VAL_B + "\n")
    (folder / "test.txt").write_text(TEST_A + "\n")
    (folder / "data.txt").write_text("\n".join(RAW) + "\n")
    (folder / "selfplay.txt").write_text("1 0 4 2 1 2\n1 4 4 1 1 2\n")
    return folder


def test_val_line_parses_into_goal_turns_and_split():
    d = parse_line(VAL_A)
    assert d.goal.counts == (3, 3, 1) and d.goal.values == (3, 0, 1) and d.partner.values == (2, 1, 1)
    assert d.turns == ["i want the books", "take two books and the ball", "deal", "<selection>"]
    assert d.speakers == [YOU, THEM, YOU, THEM]
    assert d.outcome == "agree" and d.selection == (2, 0, 1, 1, 3, 0) and d.own_items == (2, 0, 1)
    t = parse_line(TEST_A)
    assert t.outcome == "disagree" and t.selection is None and t.own_items is None
    assert format_line(d) == VAL_A and format_line(t) == TEST_A


def test_raw_lines_reformat_to_the_val_format():
    assert format_line(parse_raw_line(RAW[0])) == VAL_A
    assert format_line(parse_raw_line(RAW[1])) == VAL_B
    assert format_line(parse_raw_line(RAW[2])) == TEST_A  # one side chose no agreement, the other did not
    assert parse_raw_line(RAW[4]).selection == (1, 0, 1, 0, 4, 0)  # own split, then its complement


def test_train_is_data_minus_val_and_test_dialogues(tmp_path):
    corpus = load_corpus(DataConfig(corpus="dealornodeal", data_dir=str(write_folder(tmp_path / "dnd"))))
    assert [len(corpus.games[s]) for s in ("train", "valid", "test")] == [2, 2, 1]
    assert [g.goal.tokens() for g in corpus.games["train"]] == [[1, 0, 4, 2, 1, 2], [1, 4, 4, 1, 1, 2]]
    assert "train.txt is missing" in corpus.info["train_source"]
    assert corpus.dialogues["train"][0].speakers == [YOU, THEM, YOU]


@pytest.mark.parametrize("bad, message", [
    ("<input> 3 3 3 0 1 </input>" + VAL_A.split("</input>")[1], "expected 6 numbers"),
    (VAL_A.replace("<selection>", "ok"), "must end with a turn that is <selection>"),
    (VAL_A.replace("item1=0", "item7=0"), "expected item1="),
    (VAL_A.replace("THEM: take", "THEY: take"), "YOU: or THEM:"),
    (VAL_A.replace("<output>", "<outptu>"), "no <output>"),
    (VAL_A.replace("3 2 3 1 1 1", "3 2 2 1 1 1"), "counts"),
])
def test_malformed_val_lines_name_file_and_line(tmp_path, bad, message):
    path = tmp_path / "val.txt"
    path.write_text(VAL_B + "\n\n" + bad + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_dialogues(path)
    assert f"{path} line 3" in str(info.value)


@pytest.mark.parametrize("bad, message", [
    (RAW[3].replace("item0=0 item1=4", "item0=0 item1=5"), "does not fit the counts"),
    (RAW[3].replace("agree 1 4", "maybe 1 4"), "agree or disagree"),
    (RAW[3].replace("<selection>", "<sel>"), "no <selection>"),
    ("1 2 3", "too short"),
])
def test_malformed_raw_lines_name_file_and_line(tmp_path, bad, message):
    path = tmp_path / "data.txt"
    path.write_text(RAW[0] + "\n" + bad + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_dialogues(path, raw=True)
    assert f"{path} line 2" in str(info.value)


def test_goal_pair_files(tmp_path):
    path = tmp_path / "selfplay.txt"
    path.write_text("1 0 4 2 1 2\n1 4 4 1 1 2\n")
    ((a, b),) = read_goal_pairs(path)
    assert a.counts == b.counts == (1, 4, 1) and b.values == (4, 1, 2)
    path.write_text("1 0 4 2 1 2\n1 4 4 1 1 2\n1 4 4 1 1 2\n")
    with pytest.raises(DataError, match="odd number"):
        read_goal_pairs(path)
    path.write_text("1 0 4 2 1 2\n2 4 4 1 1 2\n")
    with pytest.raises(DataError, match=f"{path} line 2: counts"):
        read_goal_pairs(path)


def test_examples_cover_you_turns_and_the_closing_selection(tmp_path):
    config = DataConfig(corpus="dealornodeal", data_dir=str(write_folder(tmp_path / "dnd")), batch_size=8,
                        tokenizer=TokenizerConfig(pretokenize=False), dialogue=DialogueDataConfig(max_turns=20))
    data = prepare_data(config, max_length=20)
    val = data.datasets["valid"].examples
    # side A: YOU turns 0 and 2, then THEM's closing <selection> (selection only); side B: YOU turns 1 and 3
    assert [(e.respond, e.select, len(e.context)) for e in val] == [(1, 0, 0), (1, 0, 2), (0, 1, 3), (1, 0, 1), (1, 1, 3)]
    assert val[2].items == [2, 0, 1] and val[4].items == [1, 3, 0] and val[2].response_floor == THEM
    assert data.tokenizer.decode(val[4].response) == "<selection>"
    batch = next(iter(make_loader(data.datasets["valid"], data.tokenizer, 8, shuffle=False, bucket=False)))
    assert batch["goal"].shape == (5, 6) and batch["items"].shape == (5, 3) and batch["select"].tolist() == [0, 0, 1, 0, 1]
    assert batch["context_floor"][2, :3].tolist() == [1, 0, 1]


@pytest.mark.skipif(not STAGED.is_dir(), reason="Deal or No Deal is not in ../shared/data/dealornodeal")
def test_every_line_of_the_staged_files_parses():
    # about 5 s on a quiet 2-core machine (every line of five files, 27,000 lines, parsed twice)
    val, test = read_dialogues(STAGED / "val.txt"), read_dialogues(STAGED / "test.txt")
    raw = read_dialogues(STAGED / "data.txt", raw=True)
    assert (len(val), len(test), len(raw)) == (1087, 1052, 12234)
    assert len(read_goal_pairs(STAGED / "selfplay.txt")) == 4086
    assert len(read_goal_pairs(STAGED / "selfplay_eval.txt")) == 100
    corpus = load_corpus(DataConfig(corpus="dealornodeal", data_dir=str(STAGED)))
    assert len(corpus.games["train"]) == 10095  # 12,234 - 1,087 - 1,052, as PROVENANCE.txt derives
    # data.txt's sides of the val/test dialogues, re-formatted, are the val/test lines byte for byte but for two
    # whose data.txt side says disconnect while val/test write <disagree>
    held_out = set((STAGED / "val.txt").read_text().splitlines()) | set((STAGED / "test.txt").read_text().splitlines())
    assert len(held_out) - len(held_out & {format_line(d) for d in raw}) == 2


def test_dialogue_goal_pairs_take_one_side_of_each_dialogue():
    pairs = dialogue_goal_pairs([parse_line(VAL_A), parse_line(VAL_B), parse_line(TEST_A)])
    assert pairs == [(parse_line(VAL_A).goal, parse_line(VAL_A).partner), (parse_line(TEST_A).goal, parse_line(TEST_A).partner)]
