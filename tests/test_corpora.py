import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from textvae.config import DataConfig
from textvae.data.corpora import DataError, load_corpus
from textvae.data.pipeline import make_loader, prepare_data


def write_splits(folder, names, lines=("a b c", "d e", "f g h i")):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("\n".join(lines) + "\n\n")


def test_ptb_and_plain_file_names(tmp_path):
    write_splits(tmp_path / "ptb", ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"], lines=(" a b <unk> ", "c d"))
    corpus = load_corpus(DataConfig(corpus="lines", data_dir=str(tmp_path / "ptb")))
    assert corpus.train == ["a b <unk>", "c d"] and corpus.name == "ptb"
    write_splits(tmp_path / "plain", ["train.txt", "valid.txt", "test.txt"])
    corpus = load_corpus(DataConfig(corpus="lines", data_dir=str(tmp_path / "plain")))
    assert len(corpus.test) == 3


def test_missing_folder_and_file_are_named(tmp_path):
    with pytest.raises(DataError, match="data folder not found: .*nowhere"):
        load_corpus(DataConfig(corpus="lines", data_dir=str(tmp_path / "nowhere")))
    write_splits(tmp_path / "half", ["train.txt", "valid.txt"])
    with pytest.raises(DataError, match="no test file in .*half: looked for ptb.test.txt, test.txt"):
        load_corpus(DataConfig(corpus="lines", data_dir=str(tmp_path / "half")))
    with pytest.raises(DataError, match="needs data.data_dir"):
        load_corpus(DataConfig(corpus="lines"))
    with pytest.raises(KeyError, match="did you mean 'lines'"):
        load_corpus(DataConfig(corpus="line"))


def test_hf_datasets_from_local_jsonl_and_csv(tmp_path):
    folder = tmp_path / "json"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        rows = [{"sentence": f"{split} sentence {i}", "label": i} for i in range(4)]
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    corpus = load_corpus(DataConfig(corpus="hf", data_dir=str(folder), text_column="sentence"))
    assert corpus.valid == [f"valid sentence {i}" for i in range(4)]
    with pytest.raises(DataError, match="no column 'text'.*sentence"):
        load_corpus(DataConfig(corpus="hf", data_dir=str(folder)))

    folder = tmp_path / "csv"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.csv").write_text("text,label\nhello world,1\nbye now,0\n")
    assert load_corpus(DataConfig(corpus="hf", data_dir=str(folder))).train == ["hello world", "bye now"]


def test_prepare_data_on_the_embedded_corpus_reports_lengths():
    config = DataConfig(synthetic_size=500, batch_size=16)
    data = prepare_data(config, max_length=8, overlong="drop")  # some synthetic sentences are longer than 8 tokens
    report = data.reports["train"]
    assert report.total == 400 and report.dropped > 0 and report.kept == len(data.datasets["train"])
    assert all(len(ids) <= 8 for ids in data.datasets["train"].token_ids)
    assert data.sentences("train")[0].split() == data.tokenizer.decode(data.datasets["train"][0]).split()
    loader = make_loader(data.datasets["train"], data.tokenizer, 16, shuffle=True)
    batch = next(iter(loader))
    assert batch["input_ids"].shape[0] == 16 and batch["input_ids"][0, 0] == data.tokenizer.bos_id


DATA = Path(__file__).resolve().parent.parent / "textvae" / "data"
DATA_MAY_IMPORT = ("textvae.config", "textvae.errors", "textvae.registry", "textvae.serialization", "textvae.data")


def data_import_graph() -> dict[str, set[str]]:
    """Module of textvae.data -> the textvae modules it imports: at the top, under TYPE_CHECKING or inside a
    function alike. ``from P import name`` counts as importing ``P.name`` when that is a module; a module's own
    parent packages, which Python initialises before it anyway, are left out."""
    modules = {}
    for path in DATA.rglob("*.py"):
        parts = ("textvae",) + path.relative_to(DATA.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name.split(".") if is_package else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules)
        graph[name] = {t for t in targets if t.split(".")[0] == "textvae" and not f"{name}.".startswith(f"{t}.")}
    return graph


def test_data_modules_import_no_circle_and_nothing_above_them():
    graph = data_import_graph()
    assert "textvae.data.corpora" in graph and "textvae.data.tokenization.word" in graph
    upward = {name: sorted(t for t in targets if not t.startswith(DATA_MAY_IMPORT)) for name, targets in graph.items()}
    assert not {name: targets for name, targets in upward.items() if targets}
    state, stack = {}, []

    def visit(name):  # depth-first; meeting a module still on the stack closes a circle
        state[name] = "open"
        stack.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(target):] + [target]))
            if target in graph and target not in state:
                visit(target)
        stack.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_load_corpus_finds_every_corpus_whatever_module_comes_first():
    code = ("from textvae.data.corpora import load_corpus; from textvae.registry import CORPORA; "
            "from textvae.config import DataConfig; print(CORPORA.names(), load_corpus(DataConfig(corpus='synthetic')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'dailydialog'" in out and "'dsentences'" in out and "Corpus('synthetic'" in out
