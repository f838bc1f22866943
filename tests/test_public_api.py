"""The package's public names: functions that do not hide their modules, what authors need.

Import orders are checked in fresh interpreters: which of ``import alphaswarm`` and
``import alphaswarm.sweep`` runs first must not matter.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import alphaswarm as aw

ROOT = Path(__file__).resolve().parents[1]

#: (module, a name only the module has) of every function named after its module
SHADOWED = [
    ("backtest", "BacktestResult"),
    ("sweep", "stats"),
    ("reconcile", "Reconciliation"),
]

PUBLIC = {
    "BacktestResult", "Bot", "BotSpecError", "BrokerConfig", "GateRefused", "KillSwitch",
    "KillSwitchEngaged", "Ledger", "ModelError", "OrderRequest", "PaperSession",
    "Reconciliation", "RiskLimits", "Runtime", "Side", "Strategy", "SweepResult",
    "WalkForwardResult",
    "__version__", "backtest", "check_gate", "extension", "get_ledger", "kill_switch",
    "reconcile",
    "registry", "set_ledger", "sweep", "use_runtime", "walk_forward",
}  # fmt: skip


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


@pytest.mark.parametrize("package_first", [True, False], ids=["package-first", "module-first"])
@pytest.mark.parametrize(("name", "inner"), SHADOWED)
def test_a_function_does_not_hide_its_module(name, inner, package_first):
    imports = [f"import alphaswarm.{name} as mod", "import alphaswarm as aw"]
    if package_first:
        imports.reverse()
    out = run_python(
        "\n".join(["import inspect, json, sys, types", *imports])
        + f"""
print(json.dumps({{
    "module": isinstance(mod, types.ModuleType),
    "same": mod is sys.modules["alphaswarm.{name}"] and aw.{name} is mod,
    "inner": hasattr(mod, "{inner}"),
    "callable": callable(aw.{name}),
    "function": getattr(mod, "{name}").__module__.startswith(mod.__name__),
    "signature": list(inspect.signature(aw.{name}).parameters)[:1],
}}))
"""
    )
    assert out["module"] and out["same"] and out["inner"]
    assert out["callable"] and out["function"]
    assert out["signature"] in (["bot"], ["run_id"])


def test_the_modules_run_their_functions(tmp_path):
    from alphaswarm.backtest import BacktestResult
    from alphaswarm.sweep import SweepResult, stats

    bot = aw.Bot(name="api", strategy="sma_cross", universe=["DEMO"], params={"qty": 5})
    result = aw.backtest(bot, bars=400, store=False)
    assert isinstance(result, BacktestResult) and result.bars == 400
    assert "bars" in inspect.signature(aw.backtest).parameters
    swept = aw.sweep(
        bot, {"fast": [5, 10]}, bars=400, backend="serial", ledger=False, progress=False
    )
    assert isinstance(swept, SweepResult) and len(swept.trials) == 2
    assert stats.psr(0.0, 100) == pytest.approx(0.5)
    with pytest.raises(TypeError):
        aw.backtest()  # the function's own arguments, checked as usual


def test_what_a_strategy_author_needs_is_exported():
    from alphaswarm.engine.broker import BrokerConfig
    from alphaswarm.model import OrderRequest, Side
    from alphaswarm.reconcile import Reconciliation
    from alphaswarm.risk.limits import RiskLimits
    from alphaswarm.strategies.base import Strategy
    from alphaswarm.sweep.walkforward import WalkForwardResult

    assert aw.Strategy is Strategy
    assert aw.OrderRequest is OrderRequest
    assert aw.Side is Side
    assert aw.BrokerConfig is BrokerConfig
    assert aw.RiskLimits is RiskLimits
    assert aw.Reconciliation is Reconciliation
    assert aw.WalkForwardResult is WalkForwardResult


def test_the_public_names_and_no_process_internals():
    assert set(aw.__all__) == PUBLIC
    for name in aw.__all__:
        assert getattr(aw, name) is not None, name
    internals = {"runtime", "tuning", "engine_loop", "HeapFreezer", "gcfreeze", "recovery"}
    assert not internals & set(aw.__all__)
    assert PUBLIC <= set(dir(aw))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        aw.Nope  # noqa: B018
    assert not hasattr(aw, "definitely_not_here")
