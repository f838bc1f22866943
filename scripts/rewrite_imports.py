"""Rewrite references to moved alphaswarm modules to their new dotted names.

Usage::

    python scripts/rewrite_imports.py FILE [FILE ...]

Every ``alphaswarm.x.y`` reference in the given files is rewritten by :data:`MOVES`:
import statements (``import alphaswarm.trading.session``), ``from`` imports
(``from alphaswarm.trading.session import PaperSession`` and
``from alphaswarm.trading import session``), and dotted strings such as mock and
monkeypatch targets (``"alphaswarm.trading.session.PaperSession"``) or paths in
documentation (``alphaswarm/trading/session.py``), and the module-level names the split
of the session module moved (:data:`SYMBOL_MOVES`). Multi-name imports of those
private names are left for a person to split. Run ``ruff check --select I --fix``
afterwards: renamed imports may need sorting again. Files are rewritten in place; the
names of changed files are printed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

#: Old dotted module name -> new dotted module name, for every module the layered
#: layout moved (see docs/architecture.md).
MOVES: dict[str, str] = {
    # engine: the pure loop, its simulated broker and the vectorized path
    "alphaswarm.trading.engine": "alphaswarm.engine.loop",
    "alphaswarm.trading.paper_trading": "alphaswarm.engine.broker",
    "alphaswarm.trading.vectorized": "alphaswarm.engine.vectorized",
    # live: network feeds
    "alphaswarm.data.live.alpaca": "alphaswarm.live.alpaca",
    "alphaswarm.data.live.base": "alphaswarm.live.base",
    "alphaswarm.data.live.cache": "alphaswarm.live.cache",
    "alphaswarm.data.live.ccxt": "alphaswarm.live.ccxt",
    "alphaswarm.data.live.hours": "alphaswarm.live.hours",
    "alphaswarm.data.live.recording": "alphaswarm.live.recording",
    "alphaswarm.data.live": "alphaswarm.live",
    # paper: sessions and the process's collaborators
    "alphaswarm.trading.session": "alphaswarm.paper.session",
    "alphaswarm.trading.final_writes": "alphaswarm.paper.final_writes",
    "alphaswarm.trading.registry": "alphaswarm.paper.registry",
    "alphaswarm.trading.gate": "alphaswarm.paper.gate",
    "alphaswarm.trading": "alphaswarm.paper",
    "alphaswarm.killswitch": "alphaswarm.paper.killswitch",
    "alphaswarm.cluster": "alphaswarm.paper.cluster",
    "alphaswarm.runtime": "alphaswarm.paper.runtime",
    "alphaswarm.recovery": "alphaswarm.paper.recovery",
    "alphaswarm.gcfreeze": "alphaswarm.paper.gcfreeze",
    "alphaswarm.tuning": "alphaswarm.paper.tuning",
    "alphaswarm.explain": "alphaswarm.paper.explain",
    # research: the implementations behind aw.backtest and aw.reconcile
    # (alphaswarm.backtest and alphaswarm.reconcile remain as their public names)
    # ui: views that lived beside the domain objects
    "alphaswarm.sweep.views": "alphaswarm.ui.sweep_views",
}

_SESSION_PARTS = {
    "alphaswarm.paper.drivers": (
        "_OUTPUT_EVERY", "_MIN_SLEEP", "_MIN_POLL", "_MAX_BEHIND", "_PACE_TICK",
        "_REPLAY_FLUSH_SECONDS", "_next_tick",
    ),
    "alphaswarm.paper.commits": ("_RETRY_FIRST", "_RETRY_MAX", "_GroupCommit", "_write_group"),
    "alphaswarm.paper.halts": (
        "_cancel_code", "_by_ledger", "_commit_stops", "_write_final_group", "_wake_all",
        "_HALT_POLL", "_halts_pending", "_yield_to_halts", "_HaltWait",
    ),
    "alphaswarm.paper.per_loop": ("_PerLoop",),
}  # fmt: skip

#: Module-level names of the old ``trading/session.py`` that moved to another module
#: when it was split: ``alphaswarm.paper.session.NAME`` -> new dotted name.
SYMBOL_MOVES: dict[str, str] = {
    f"alphaswarm.paper.session.{name}": f"{module}.{name}"
    for module, names in _SESSION_PARTS.items()
    for name in names
}

_PATTERN = re.compile(
    r"(?<![\w.])("
    + "|".join(re.escape(k) for k in sorted(MOVES, key=len, reverse=True))
    + r")(?![\w])"
)
_FROM_PACKAGE = re.compile(r"\bfrom\s+(alphaswarm(?:\.\w+)*)\s+import\s+(\w+)")


def _dotted(text: str) -> str:
    return _PATTERN.sub(lambda m: MOVES[m.group(1)], text)


def _from_package(text: str) -> str:
    """``from alphaswarm.trading import session`` -> ``from alphaswarm.paper import session``.

    Only when the imported name is a moved module; the new parent package is used.
    """

    def replace(match: re.Match[str]) -> str:
        package, name = match.group(1), match.group(2)
        moved = MOVES.get(f"{package}.{name}")
        if moved is None:
            return match.group(0)
        new_package, _, new_name = moved.rpartition(".")
        tail = "" if new_name == name else f" as {name}"
        if tail and re.match(r"\s+as\s", text[match.end() :]):
            tail = ""  # an explicit alias already follows
            return f"from {new_package} import {new_name}"
        return f"from {new_package} import {new_name}{tail}"

    return _FROM_PACKAGE.sub(replace, text)


def _paths(text: str) -> str:
    """``alphaswarm/trading/session.py`` -> ``alphaswarm/paper/session.py`` (docs, comments)."""
    for old, new in sorted(MOVES.items(), key=lambda kv: len(kv[0]), reverse=True):
        old_path, new_path = old.replace(".", "/"), new.replace(".", "/")
        text = re.sub(rf"(?<![\w/]){re.escape(old_path)}(?=\.py\b|/)", new_path, text)
    return text


_SYMBOL_PATTERN = re.compile(
    r"(?<![\w.])alphaswarm\.paper\.session\.("
    + "|".join(re.escape(k.rpartition(".")[2]) for k in SYMBOL_MOVES)
    + r")(?![\w])"
)
_FROM_SESSION = re.compile(r"\bfrom\s+alphaswarm\.paper\.session\s+import\s+(\w+)\s*$", re.M)


def _symbols(text: str) -> str:
    """Names the split of the session module moved: dotted and single-name imports."""
    text = _SYMBOL_PATTERN.sub(lambda m: SYMBOL_MOVES[m.group(0)], text)

    def from_import(match: re.Match[str]) -> str:
        moved = SYMBOL_MOVES.get(f"alphaswarm.paper.session.{match.group(1)}")
        if moved is None:
            return match.group(0)
        module, _, name = moved.rpartition(".")
        return f"from {module} import {name}"

    return _FROM_SESSION.sub(from_import, text)


def rewrite(text: str) -> str:
    """Return ``text`` with every moved module reference renamed."""
    return _symbols(_paths(_dotted(_from_package(text))))


def main(argv: list[str]) -> int:
    """Rewrite each file named in ``argv`` in place; print the names of changed files."""
    for name in argv:
        path = Path(name)
        if not path.is_file() or path.resolve() == Path(__file__).resolve():
            continue
        try:
            old = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new = rewrite(old)
        if new != old:
            path.write_text(new, encoding="utf-8")
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
