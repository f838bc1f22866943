"""The layered layout's seams: feeds and views registered upward, Bot a pure spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import alphaswarm as aw
from alphaswarm import views

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_data_does_not_import_the_live_feeds():
    out = run_python(
        """
        import json, sys
        import alphaswarm.data
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("alphaswarm.live"))))
        """
    )
    assert out == []


def test_a_bot_spec_can_name_a_live_feed():
    out = run_python(
        """
        import json
        import alphaswarm.bots
        from alphaswarm.data import FEED_KEYS
        print(json.dumps(sorted(FEED_KEYS)))
        """
    )
    assert {"alpaca", "ccxt", "recording", "synthetic"} <= set(out)


def test_bot_is_a_pure_spec():
    bot = aw.Bot(name="spec", strategy="sma_cross", universe=["DEMO"])
    assert not hasattr(bot, "backtest") and not hasattr(bot, "paper")


def test_a_script_gets_its_plot_without_importing_the_ui():
    out = run_python(
        """
        import json, sys
        import alphaswarm as aw
        bot = aw.Bot(name="plot", strategy="sma_cross", universe=["DEMO"])
        result = aw.backtest(bot, bars=300, store=False)
        before = "alphaswarm.ui" in sys.modules
        view = result.plot()
        print(json.dumps([before, type(view).__module__]))
        """
    )
    assert out == [False, "alphaswarm.ui.backtest_view"]


def test_an_unknown_view_kind_is_a_readable_error():
    with pytest.raises(views.ViewNotRegistered, match="no view registered for 'nothing'"):
        views.view("nothing", object())
