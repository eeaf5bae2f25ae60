"""The package's layering (DESIGN.md, "Floors"): loading a model folder imports neither accelerate nor the trainer
nor evaluation; the import graph, read from the source with ``ast`` (imports inside functions included), has no
circle and no arrow pointing up a floor; no module is longer than 600 lines."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from textvae import TextVAE

from .conftest import tiny_model_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "textvae"
MAX_LINES = 600

# DESIGN.md's floors, bottom up, keyed by the part of the name after ``textvae.``; an import may point to its own
# floor or below, never above. The package itself (``textvae/__init__.py``, the public API) sits on top.
FLOORS = [
    {"checked", "config", "config_migration", "errors", "registry", "serialization"},
    {"data", "modules"},
    {"models", "objectives"},
    {"training", "evaluation", "tasks"},
    {"demo"},  # the demo's server and endpoints: on the library's public pieces, below the command that starts it
    {"cli", "commands"},
]
FLOOR_OF = {name: level for level, names in enumerate(FLOORS) for name in names}
TOP = len(FLOORS)

# What loading a model folder must leave unimported.
NOT_FOR_LOADING = ("accelerate", "textvae.training.trainer", "textvae.evaluation")

# Runs in a fresh interpreter: records, for every module in NOT_FOR_LOADING, the chain of textvae frames that first
# imported it, then loads the model folder and prints which of them ended up in sys.modules.
LOAD_SCRIPT = r"""
import json, sys, traceback

WATCHED = set(json.loads(sys.argv[1]))
first_import = {}

class Watcher:
    def find_spec(self, name, path=None, target=None):
        if name in WATCHED and name not in first_import:
            first_import[name] = [
                f"{frame.filename}:{frame.lineno} ({frame.line})" for frame in traceback.extract_stack()[:-1]
                if "/textvae/" in frame.filename.replace("\\", "/") or frame.filename == "<string>"
            ]
        return None

sys.meta_path.insert(0, Watcher())
import textvae
model = textvae.load_pretrained(sys.argv[2])
print(json.dumps({"textvae": textvae.__file__, "imported": {
    name: first_import.get(name, ["(no textvae frame on the stack)"]) for name in WATCHED if name in sys.modules}}))
"""


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """{dotted name: file} of every module of ``package`` (a package is named by its ``__init__.py``)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """{module: {imported module of the package: line of the first such import}} for every module of ``package``,
    from absolute and relative imports anywhere in its source (module level, functions, ``if`` blocks)."""
    modules = package_modules(package)
    graph = {}
    for name, path in modules.items():
        parent = name if path.name == "__init__.py" else name.rpartition(".")[0]
        arrows: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = parent.split(".")
                    base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # ``from pkg import sub`` imports the submodule ``pkg.sub``; ``from mod import name``, ``mod`` itself
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in targets:
                if target == package.name or target.startswith(f"{package.name}."):
                    arrows.setdefault(target, node.lineno)
        graph[name] = arrows
    return graph


def floor(module: str) -> int:
    parts = module.split(".")
    return TOP if len(parts) == 1 else FLOOR_OF[parts[1]]


def circular_groups(graph: dict[str, dict[str, int]]) -> list[set]:
    """The strongly connected components that hold a circle (Tarjan): modules that import each other, directly or
    through others."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, {}):
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components, key=min)


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle (as a path that returns to its start) per group of modules that import each other."""
    return [circle_in(graph, group) for group in circular_groups(graph)]


def circle_in(graph: dict[str, dict[str, int]], component: set) -> list[str]:
    """A shortest circle through the component's first module (breadth first, inside the component)."""
    start = min(component)
    previous = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, {})):
            if w == start:
                path = [v]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1] + [start]
            if w in component and w not in previous:
                previous[w] = v
                queue.append(w)
    raise AssertionError(f"no circle through {start}")  # a component with a circle always has one through each node


def describe(graph: dict[str, dict[str, int]], path: list[str]) -> str:
    modules = package_modules()
    return "\n    ".join(f"{a} -> {b}  ({modules[a].relative_to(ROOT)}:{graph[a][b]})" for a, b in zip(path, path[1:]))


def test_loading_a_model_folder_imports_neither_accelerate_nor_the_trainer_nor_evaluation(tokenizer, tmp_path):
    folder = TextVAE.from_config(tiny_model_config(), tokenizer).save_pretrained(tmp_path / "model")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, json.dumps(NOT_FOR_LOADING), str(folder)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(report["textvae"]).resolve() == PACKAGE / "__init__.py"  # this checkout, not an installed copy
    # one assertion per module, each naming the chain of textvae imports that first pulled it in
    for name in NOT_FOR_LOADING:
        chain = "\n    ".join(report["imported"].get(name, []))
        assert name not in report["imported"], (
            f"`import textvae; textvae.load_pretrained(folder)` imported {name}, first via:\n    {chain}"
        )


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    groups = circular_groups(graph)
    assert not groups, "import circles:\n  " + "\n  ".join(
        f"{len(group)} modules import each other ({', '.join(sorted(group))}); one circle:\n    "
        + describe(graph, circle_in(graph, group)) for group in groups
    )


def test_imports_never_point_up_a_floor():
    graph = import_graph()
    unplaced = sorted({m.split(".")[1] for m in graph if "." in m and m.split(".")[1] not in FLOOR_OF})
    assert not unplaced, f"textvae modules on no floor of DESIGN.md (add them to FLOORS): {unplaced}"
    upward = [
        f"{a} (floor {floor(a)}) -> {b} (floor {floor(b)})  ({package_modules()[a].relative_to(ROOT)}:{line})"
        for a, arrows in sorted(graph.items()) for b, line in sorted(arrows.items())
        if b in graph and floor(b) > floor(a)
    ]
    # among them: models, modules, data, config, errors, registry, serialization never reach training,
    # evaluation or the CLI, not even lazily inside a function
    assert not upward, "imports pointing up a floor:\n  " + "\n  ".join(upward)


def test_no_module_is_longer_than_600_lines():
    lengths = {name: len(path.read_text().splitlines()) for name, path in package_modules().items()}
    long = {name: n for name, n in sorted(lengths.items()) if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_graph_reader_sees_every_kind_of_import(tmp_path):
    """The reader itself: relative and absolute imports, ``from package import submodule`` or ``name``, imports
    inside functions and ``if`` blocks, other packages left out."""
    sources = {
        "__init__.py": "from .low import x\nimport os\n",
        "low.py": "x = 1\ndef f():\n    from .high.mod import g\n",
        "high/__init__.py": "y = 2\n",
        "high/mod.py": "import pkg.low\nfrom .. import low\nfrom . import y\nif True:\n    from ..high import mod\n",
        "high/other.py": "from .mod import g\nfrom pkg.high import mod\nimport torch\n",
    }
    for name, text in sources.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    assert import_graph(tmp_path / "pkg") == {
        "pkg": {"pkg.low": 1},
        "pkg.low": {"pkg.high.mod": 3},
        "pkg.high": {},
        "pkg.high.mod": {"pkg.low": 1, "pkg.high": 3, "pkg.high.mod": 5},
        "pkg.high.other": {"pkg.high.mod": 1},
    }
    assert floor("textvae") == TOP and floor("textvae.serialization") == 0 and floor("textvae.cli.main") == 5
    assert floor("textvae.demo.app") == 4
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"a": 1}}) == [["a", "a"]] and cycles({"a": {"b": 1}, "b": {}}) == []
