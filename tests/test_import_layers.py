"""No module of the kit imports a module of a higher layer (docs/architecture.md).

The test reads every module under ``alphaswarm/`` with :mod:`ast` (imports inside
functions included, ``if TYPE_CHECKING:`` blocks aside), maps each module to its
layer and lists every import that points up the order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "alphaswarm"

#: The layers, lowest first. A module may import its own layer and the ones below.
#: Each entry: layer name -> module name prefixes (a prefix matches the module and
#: its submodules). The longest matching prefix decides.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "core",
        (
            "alphaswarm",
            "alphaswarm.model",
            "alphaswarm.callable_module",
            "alphaswarm.extras",
            "alphaswarm.frames",
            "alphaswarm.frame_records",
            "alphaswarm.notebook",
            "alphaswarm.views",
            "alphaswarm.metric_catalog",
            "alphaswarm.metrics",
            "alphaswarm.trail",
            "alphaswarm.stored_values",
            "alphaswarm.strategies",
            "alphaswarm.risk",
        ),
    ),
    ("data", ("alphaswarm.data",)),
    ("engine", ("alphaswarm.engine",)),
    ("live", ("alphaswarm.live",)),
    ("broker", ("alphaswarm.broker",)),
    ("spec", ("alphaswarm.bots", "alphaswarm.spec_policy")),
    ("ledger", ("alphaswarm.ledger",)),
    ("paper", ("alphaswarm.paper",)),
    ("research", ("alphaswarm.research", "alphaswarm.backtest", "alphaswarm.reconcile")),
    ("sweep", ("alphaswarm.sweep",)),
    ("ui", ("alphaswarm.ui",)),
    ("server", ("alphaswarm.server",)),
    ("cli", ("alphaswarm.cli",)),
]

RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str:
    """The layer of a dotted module name (the longest matching prefix wins)."""
    best, length = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = name, len(prefix)
    if best is None:
        raise LookupError(f"{module} belongs to no layer: add it to LAYERS")
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(dotted: str) -> bool:
    relative = Path(*dotted.split("."))
    root = PACKAGE.parent
    return (root / relative).with_suffix(".py").is_file() or (
        root / relative / "__init__.py"
    ).is_file()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every alphaswarm module ``path`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
            found += [(node.lineno, n) for n in names if n.split(".")[0] == "alphaswarm"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != "alphaswarm":
                continue
            for alias in node.names:  # ``from alphaswarm.paper import session``: the submodule
                submodule = f"{source}.{alias.name}"
                found.append((node.lineno, submodule if is_module(submodule) else source))
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def violations() -> list[str]:
    found = []
    for path in modules():
        here = module_name(path)
        mine = layer_of(here)
        for line, target in imports_of(path):
            theirs = layer_of(target)
            if RANK[theirs] > RANK[mine]:
                where = path.relative_to(PACKAGE.parent)
                found.append(f"{where}:{line}: {here} ({mine}) imports {target} ({theirs})")
    return found


def test_every_module_has_a_layer():
    for path in modules():
        layer_of(module_name(path))


def test_no_module_imports_a_higher_layer():
    found = violations()
    assert not found, "imports against the layer order:\n" + "\n".join(found)


def test_the_walk_sees_lazy_imports_and_skips_type_checking(tmp_path, monkeypatch):
    """The checker itself: an import inside a function counts, a TYPE_CHECKING one does not."""
    package = tmp_path / "alphaswarm"
    (package / "engine").mkdir(parents=True)
    (package / "ui").mkdir()
    for init in (package, package / "engine", package / "ui"):
        (init / "__init__.py").write_text("")
    (package / "ui" / "view.py").write_text("")
    (package / "engine" / "loop.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from alphaswarm.ui import view\n"
        "def f():\n"
        "    from alphaswarm.ui import view\n"
    )
    monkeypatch.setitem(globals(), "PACKAGE", package)
    assert violations() == [
        "alphaswarm/engine/loop.py:5: "
        "alphaswarm.engine.loop (engine) imports alphaswarm.ui.view (ui)"
    ]


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("alphaswarm", "core"),
        ("alphaswarm.engine.loop", "engine"),
        ("alphaswarm.live.alpaca", "live"),
        ("alphaswarm.paper.session", "paper"),
        ("alphaswarm.backtest", "research"),
        ("alphaswarm.ui.app", "ui"),
    ],
)
def test_layer_of(module, layer):
    assert layer_of(module) == layer


#: What the pure engine must not touch: a clock, a database, threads or a loop.
IMPURE = {"time", "threading", "asyncio", "concurrent", "sqlalchemy", "sqlite3", "psycopg"}


def test_the_engine_is_pure():
    found = []
    for path in sorted((PACKAGE / "engine").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("now", "utcnow", "today")
            ):
                names = [f"<clock>.{node.func.attr}()"]
            else:
                continue
            bad = [n for n in names if n.split(".")[0] in IMPURE or n.startswith("<clock>")]
            found += [f"{path.name}:{node.lineno}: {n}" for n in bad]
    assert not found, "the engine reads a clock, a database or a thread:\n" + "\n".join(found)
