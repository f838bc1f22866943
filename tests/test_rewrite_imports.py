"""scripts/rewrite_imports.py renames every form of a moved module reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "rewrite_imports", ROOT / "scripts" / "rewrite_imports.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_form_is_rewritten():
    rewrite = load_script().rewrite
    before = (
        "import alphaswarm.trading.session\n"
        "from alphaswarm.trading.session import PaperSession\n"
        "from alphaswarm.trading import paper_trading\n"
        "from alphaswarm.trading import engine as eng\n"
        "from alphaswarm import runtime\n"
        "from alphaswarm.data.live.alpaca import AlpacaFeed\n"
        'monkeypatch.setattr("alphaswarm.killswitch.kill_switch", f)\n'
        "see alphaswarm/trading/session.py and alphaswarm/data/live/\n"
        "from alphaswarm.data import make_feed\n"
    )
    assert rewrite(before) == (
        "import alphaswarm.paper.session\n"
        "from alphaswarm.paper.session import PaperSession\n"
        "from alphaswarm.engine import broker as paper_trading\n"
        "from alphaswarm.engine import loop as eng\n"
        "from alphaswarm.paper import runtime\n"
        "from alphaswarm.live.alpaca import AlpacaFeed\n"
        'monkeypatch.setattr("alphaswarm.paper.killswitch.kill_switch", f)\n'
        "see alphaswarm/paper/session.py and alphaswarm/live/\n"
        "from alphaswarm.data import make_feed\n"
    )


def test_rewriting_twice_changes_nothing_more():
    rewrite = load_script().rewrite
    once = rewrite("from alphaswarm.trading.engine import Engine\nimport alphaswarm.tuning\n")
    assert (
        rewrite(once)
        == once
        == ("from alphaswarm.engine.loop import Engine\nimport alphaswarm.paper.tuning\n")
    )


def test_names_of_the_split_session_module_follow_it():
    rewrite = load_script().rewrite
    before = (
        "from alphaswarm.trading.session import _yield_to_halts\n"
        'monkeypatch.setattr("alphaswarm.trading.session._GroupCommit", x)\n'
        "from alphaswarm.trading.session import PaperSession\n"
    )
    assert rewrite(before) == (
        "from alphaswarm.paper.halts import _yield_to_halts\n"
        'monkeypatch.setattr("alphaswarm.paper.commits._GroupCommit", x)\n'
        "from alphaswarm.paper.session import PaperSession\n"
    )
