"""Strategy base, built-ins against hand-computed signals, and resolving references."""

from __future__ import annotations

import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from alphaswarm.model import ModelError
from alphaswarm.strategies import (
    ALLOWED_MODULES,
    BuyAndHold,
    MeanReversion,
    SmaCross,
    Strategy,
    allow_strategy_module,
    resolve_strategy,
)
from alphaswarm.strategies.base import SIGNAL_CODES
from tests.engine.helpers import SYM, bar

CTX = SimpleNamespace(equity=100_000.0)


def signals(strategy: Strategy, closes, symbol: str = SYM) -> list[str | None]:
    return [strategy.on_bar(bar(i, c, symbol=symbol), CTX) for i, c in enumerate(closes)]


# ------------------------------------------------------------------------ base


def test_unknown_param_named_with_allowed_list():
    with pytest.raises(
        ModelError,
        match=r"^params: unknown parameter\(s\) fsat for strategy sma_cross; "
        r"allowed: allocation, fast, qty, slow$",
    ):
        SmaCross(fsat=3)


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"fast": "3"}, r"^params\.fast: expected a number"),
        ({"slow": float("nan")}, r"^params\.slow: must be finite"),
        ({"fast": 2.5}, r"^params\.fast: must be a whole number"),
        ({"fast": 0}, r"^params\.fast: must be a whole number >= 1"),
        ({"fast": 30, "slow": 10}, r"^params\.fast: must be < slow \(10\)"),
        ({"qty": -1}, r"^params\.qty: must be a number > 0"),
        ({"allocation": 0}, r"^params\.allocation: must be in \(0, 10\]"),
    ],
)
def test_bad_params_named(params, pattern):
    with pytest.raises(ModelError, match=pattern):
        SmaCross(**params)


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"window": 1}, r"^params\.window: must be a whole number >= 2"),
        ({"entry_z": 0.5, "exit_z": 1.0}, r"^params\.entry_z: must be > exit_z >= 0"),
        ({"short": "yes"}, r"^params\.short: expected true/false"),
    ],
)
def test_mean_reversion_bad_params_named(params, pattern):
    with pytest.raises(ModelError, match=pattern):
        MeanReversion(**params)


def test_size_from_qty_or_allocation():
    b = bar(0, 33.0)
    assert SmaCross(qty=7).size(b, CTX) == 7.0
    assert SmaCross(allocation=0.5).size(b, CTX) == float(50_000 // 33)
    assert SmaCross().describe() == {
        "strategy": "sma_cross",
        "params": {"qty": None, "allocation": 0.2, "fast": 10, "slow": 30},
    }


def test_base_on_bar_is_abstract():
    with pytest.raises(NotImplementedError):
        Strategy().on_bar(bar(0, 1), CTX)


# -------------------------------------------------------------------- built-ins


def test_sma_cross_hand_computed():
    s = SmaCross(fast=2, slow=3)
    # bars 0-1 warm up; bar 2: equal SMAs (a zero reading, skipped); bar 3: fast 10.5 >
    # slow 10.33, the first non-zero reading: not a cross; bar 5: fast 10.5 < slow 10.67
    # -> sell; bar 7: fast 10.5 > slow 10 -> buy
    assert signals(s, [10, 10, 10, 11, 12, 9, 8, 13, 14]) == [
        None, None, None, None, None, "sell", None, "buy", None,
    ]  # fmt: skip


def test_sma_cross_first_reading_above_is_not_a_buy():
    # bar 2, the first bar with both averages: fast 11.5 > slow 11, no earlier reading
    # to cross from; bar 5: fast 10.5 < slow 11.33 -> sell
    assert signals(SmaCross(fast=2, slow=3), [10, 11, 12, 13, 12, 9]) == [
        None, None, None, None, None, "sell",
    ]  # fmt: skip
    close = np.array([10, 11, 12, 13, 12, 9], dtype=float)
    codes = SmaCross(fast=2, slow=3).signals(close)
    assert codes.tolist() == [0, 0, 0, 0, 0, SIGNAL_CODES["sell"]]


def test_sma_cross_first_reading_below_is_not_a_sell():
    assert signals(SmaCross(fast=2, slow=3), [12, 11, 10, 9, 10, 12]) == [
        None, None, None, None, None, "buy",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def long_walk() -> np.ndarray:
    """21,000 closes: long enough to cross the indicators' 10,000-bar resync."""
    rng = np.random.default_rng(3)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 21_000)))


def test_sma_cross_matches_a_numpy_reference(long_walk):
    closes = long_walk
    fast, slow = 5, 17
    got = signals(SmaCross(fast=fast, slow=slow), closes.tolist())
    f = np.convolve(closes, np.ones(fast) / fast, "valid")[slow - fast :]
    sl = np.convolve(closes, np.ones(slow) / slow, "valid")
    sign = np.sign(f - sl)
    expected: list[str | None] = [None] * (slow - 1)
    prev = 0
    for s in sign:
        out = None
        if s != 0 and s != prev:
            if prev != 0:  # a change of sign between two non-zero readings
                out = "buy" if s > 0 else "sell"
            prev = s
        expected.append(out)
    assert got == expected
    assert got.count("buy") > 100


def test_mean_reversion_matches_a_numpy_reference(long_walk):
    closes = long_walk
    w = 20
    got = signals(MeanReversion(window=w, entry_z=2.0, exit_z=0.5), closes.tolist())
    windows = np.lib.stride_tricks.sliding_window_view(closes, w)
    zs = (closes[w - 1 :] - windows.mean(axis=1)) / windows.std(axis=1)  # population std
    expected: list[str | None] = [None] * (w - 1)
    side = 0
    for z in zs.tolist():
        out = None
        if side == 0 and z < -2.0:
            side, out = 1, "buy"
        elif side > 0 and z > -0.5:
            side, out = 0, "flat"
        expected.append(out)
    assert got == expected
    assert got.count("buy") > 100


def test_sma_cross_keeps_state_per_symbol():
    s = SmaCross(fast=2, slow=3)
    out = []
    for i, c in enumerate([10, 10, 10, 9, 12]):
        out.append(s.on_bar(bar(i, c, symbol="A"), CTX))
        out.append(s.on_bar(bar(i, 20 - i, symbol="B"), CTX))
    # A: below on bar 3, above on bar 4 -> buy; B: below throughout
    assert out[-4:] == [None, None, "buy", None]


def test_mean_reversion_hand_computed():
    s = MeanReversion(window=3, entry_z=1.0, exit_z=0.5)
    # [10,10,7]: mean 9, pop. std sqrt(2) -> z = -1.41 < -1 -> buy
    # [10,7,9]: mean 8.67, std 1.25 -> z = 0.27 > -0.5 -> flat
    assert signals(s, [10, 10, 10, 7, 9]) == [None, None, None, "buy", "flat"]


def test_mean_reversion_short_side():
    long_only = MeanReversion(window=3, entry_z=1.0, exit_z=0.5)
    assert signals(long_only, [10, 10, 13, 11]) == [None, None, None, None]
    both = MeanReversion(window=3, entry_z=1.0, exit_z=0.5, short=True)
    # [10,10,13]: z = +1.41 -> sell; [10,13,11]: z = -0.27 < 0.5 -> flat
    assert signals(both, [10, 10, 13, 11]) == [None, None, "sell", "flat"]


def test_buy_and_hold_buys_once_per_symbol():
    s = BuyAndHold()
    assert signals(s, [1, 2, 3]) == ["buy", None, None]
    assert s.on_bar(bar(0, 5, symbol="B"), CTX) == "buy"


# -------------------------------------------------------------------- resolving


def test_resolve_builtins_and_classes():
    assert resolve_strategy("sma_cross") is SmaCross
    assert resolve_strategy("mean_reversion") is MeanReversion
    assert resolve_strategy("buy_and_hold") is BuyAndHold
    assert resolve_strategy(BuyAndHold) is BuyAndHold
    assert resolve_strategy("alphaswarm.strategies.builtin:SmaCross") is SmaCross


def test_resolve_unknown_name_lists_builtins():
    with pytest.raises(ModelError, match=r"unknown strategy 'smacross'; built-ins: buy_and_hold"):
        resolve_strategy("smacross")
    with pytest.raises(ModelError, match=r"^strategy: expected a name"):
        resolve_strategy("")


@pytest.mark.parametrize("ref", ["os:system", "subprocess:Popen", "alphaswarm_evil.x:Y"])
def test_resolve_refuses_modules_outside_the_allowed_prefixes(ref, monkeypatch):
    monkeypatch.delenv("ALPHASWARM_STRATEGY_MODULES", raising=False)
    module = ref.partition(":")[0]
    with pytest.raises(ModelError, match=rf"importing '{module}' is not allowed"):
        resolve_strategy(ref)
    assert module not in sys.modules or module in ("os", "subprocess")


def test_resolve_not_a_strategy_subclass():
    with pytest.raises(ModelError, match=r"is not a Strategy subclass"):
        resolve_strategy("alphaswarm.strategies.builtin:math")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A strategy module ``engtest_user_strats`` on sys.path, forgotten afterwards."""
    (tmp_path / "engtest_user_strats.py").write_text(
        textwrap.dedent(
            """
            from alphaswarm.strategies import Strategy

            class Flat(Strategy):
                name = "flat_user"

                def on_bar(self, bar, ctx):
                    return "flat"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("ALPHASWARM_STRATEGY_MODULES", raising=False)
    monkeypatch.setattr("alphaswarm.strategies.ALLOWED_MODULES", list(ALLOWED_MODULES))
    yield "engtest_user_strats:Flat"
    sys.modules.pop("engtest_user_strats", None)


def test_allow_strategy_module(user_module):
    with pytest.raises(ModelError, match="not allowed"):
        resolve_strategy(user_module)
    allow_strategy_module("engtest_user_strats")
    cls = resolve_strategy(user_module)
    assert cls.__name__ == "Flat" and issubclass(cls, Strategy)


def test_allow_by_environment_variable(user_module, monkeypatch):
    monkeypatch.setenv("ALPHASWARM_STRATEGY_MODULES", "somewhere.else, engtest_user_strats")
    assert resolve_strategy(user_module).__name__ == "Flat"


def test_prefix_must_match_a_whole_module_path(user_module, monkeypatch):
    monkeypatch.setenv("ALPHASWARM_STRATEGY_MODULES", "engtest_user")
    with pytest.raises(ModelError, match="not allowed"):
        resolve_strategy(user_module)


def test_allowed_but_missing_module(monkeypatch):
    monkeypatch.setenv("ALPHASWARM_STRATEGY_MODULES", "engtest_no_such_module")
    with pytest.raises(ModelError, match=r"cannot import 'engtest_no_such_module'"):
        resolve_strategy("engtest_no_such_module:X")
