"""The demo bot shows a fill within the first 30 bars of a session (30 s at speed 60).

The README snippet and notebook 01 run that bot at the speeds they document, and the
README's notebook table lists every notebook.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

import alphaswarm as aw
from alphaswarm.bots import DEMO_SPEC
from alphaswarm.paper.runtime import engine_loop

#: Bars of a session a newcomer waits at most for the first fill: 30 s at the demo speed.
FIRST_FILL_WITHIN_BARS = 30


@pytest.fixture
def ledger(tmp_path):
    led = aw.set_ledger(f"sqlite:///{tmp_path}/demo.db")
    yield led
    aw.set_ledger(None)
    led.close()


def test_demo_bot_fills_within_30_bars_of_a_session(ledger):
    bot = aw.Bot(DEMO_SPEC)
    result = aw.backtest(bot, bars=7800)  # what the README snippet and notebook 01 do first
    assert result.metrics["sharpe"] >= 0.5  # it still passes the paper gate honestly
    # `alphaswarm paper run sma-demo --speed 60 --duration 30`, in bar terms
    session = aw.PaperSession(bot, speed=0, duration_minutes=FIRST_FILL_WITHIN_BARS)
    session.start(loop=engine_loop())
    assert session.wait(60)
    assert session.status == "completed"
    assert session.bars_seen <= FIRST_FILL_WITHIN_BARS
    assert session.num_fills >= 1


ROOT = Path(__file__).resolve().parents[2]
#: Seconds a newcomer waits at most for the first fill at a documented speed.
FIRST_FILL_WITHIN_SECONDS = 30


def _documented_demos() -> list[tuple[str, str, int]]:
    """(where, the bot's YAML, the session's speed) of the README snippet and notebook 01."""
    readme = (ROOT / "README.md").read_text().split("## In a notebook", 1)[1]
    nb = nbformat.read(ROOT / "notebooks" / "01-first-paper-session.ipynb", as_version=4)
    notebook = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    out = []
    for where, text in (("README", readme), ("notebook 01", notebook)):
        spec = re.search(r"Bot\.from_yaml\((?:\"\"\"|''')(.*?)(?:\"\"\"|''')\)", text, re.S)
        speed = re.search(r"aw\.PaperSession\(bot\b[^)]*?speed=(\d+)", text)
        assert spec and speed, where
        out.append((where, spec.group(1), int(speed.group(1))))
    return out


def test_documented_demos_fill_within_30_seconds(ledger):
    """The README snippet and notebook 01 run the demo bot at their own speeds: the bars
    until its first fill, at that speed, are at most 30 s of a newcomer's time."""
    demos = _documented_demos()
    for where, spec, _speed in demos:
        assert aw.Bot.from_yaml(spec).spec_hash == aw.Bot(DEMO_SPEC).spec_hash, where
    bot = aw.Bot(DEMO_SPEC)
    aw.backtest(bot, bars=7800)
    session = aw.PaperSession(bot, speed=0, duration_minutes=None, max_bars=200)
    session.start(loop=engine_loop())
    assert session.wait(60)
    stages = list(session.frames_df.sort_values("seq")["stage"])
    assert "order.filled" in stages
    bars = stages[: stages.index("order.filled")].count("bar.received")
    for where, _spec, speed in demos:
        seconds = bars * 60 / speed  # one-minute bars, `speed` times faster than real time
        assert seconds <= FIRST_FILL_WITHIN_SECONDS, f"{where}: first fill after {seconds:.0f} s"


def test_readme_lists_every_notebook():
    table = (ROOT / "README.md").read_text().split("Notebooks (", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"^\| `([^`]+\.ipynb)` \|", table, re.M))
    assert listed == {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
