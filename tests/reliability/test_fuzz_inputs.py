"""Bad input to the Python API: the spec loader, the replay feeds and PaperSession params.

Whatever the input, the answer is the object or the documented error
(``BotSpecError``/``ModelError`` for specs, ``FeedError`` for data,
``ValueError`` for session params), never another exception, and a refused
session writes no ledger row.
"""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaswarm.bots import Bot, BotSpecError, parse_document
from alphaswarm.data.base import FeedError
from alphaswarm.data.replay import ReplayFeed
from alphaswarm.ledger import Ledger
from alphaswarm.model import ModelError
from alphaswarm.paper.session import PaperSession

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# --------------------------------------------------------------------- spec loader

ODD_CHARS = st.sampled_from(
    ["\x00", "\u202e", "\u200b", "\ufeff", "e\u0301", "\U0001f680", "\u0130", "\ud800", "\n", ":",
     "- ", "{", "[", "&a", "*a", "!!", "%", "@", "`", "'", '"', "#", "\t", "---", "..."]
)  # fmt: skip
ODD_TEXT = st.lists(st.one_of(st.text(max_size=8), ODD_CHARS), max_size=12).map("".join)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    ODD_TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(ODD_TEXT, SCALARS), inner, max_size=4),
    ),
    max_leaves=20,
)
SPEC_KEYS = st.sampled_from([*Bot.TOP_KEYS, "bogus", "Name", ""])
SPECS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(ODD_TEXT, VALUES),
        "strategy": st.one_of(
            st.sampled_from(["sma_cross", "mean_reversion", "buy_and_hold", "os:system",
                             "alphaswarm.strategies:Strategy", "builtins:object", ""]),
            VALUES,
        ),
        "params": st.one_of(
            st.dictionaries(st.sampled_from(["fast", "slow", "window", "entry_z", "x"]), VALUES),
            VALUES,
        ),
        "universe": st.one_of(st.lists(st.one_of(ODD_TEXT, VALUES), max_size=4), VALUES),
        "risk": st.one_of(
            st.dictionaries(
                st.sampled_from(["max_order_notional", "max_position_qty", "max_drawdown_pct",
                                 "max_daily_loss", "kill_switch_attached", "nope"]),
                VALUES,
            ),
            VALUES,
        ),
        "broker": VALUES,
        "gate": VALUES,
        "metrics": VALUES,
        "data": VALUES,
        "extras": VALUES,
    },
)  # fmt: skip


def _spec_or_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (BotSpecError, ModelError):
        return None


@FUZZ
@given(text=st.one_of(st.text(), ODD_TEXT))
def test_any_text_is_a_bot_or_a_spec_error(text):
    bot = _spec_or_error(Bot.from_yaml, text)
    assert bot is None or isinstance(bot, Bot)


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_parse_or_raise_a_spec_error(data):
    _spec_or_error(parse_document, data)


@FUZZ
@given(spec=SPECS, as_yaml=st.booleans())
def test_spec_shaped_garbage_is_a_bot_or_a_spec_error(spec, as_yaml):
    if as_yaml:
        try:
            text = yaml.safe_dump(spec, allow_unicode=True)
        except (yaml.YAMLError, UnicodeEncodeError):
            return
        bot = _spec_or_error(Bot.from_yaml, text)
    else:
        bot = _spec_or_error(Bot, spec)
    if bot is not None:  # accepted: then it is storable and hashable JSON
        json.dumps(bot.spec, allow_nan=False).encode("utf-8")
        assert bot.name.strip() and bot.universe


@FUZZ
@given(keys=st.lists(st.one_of(SPEC_KEYS, st.integers(), st.booleans(), st.none()), max_size=5))
def test_non_string_and_unknown_keys_are_spec_errors(keys):
    spec = {k: "x" for k in keys}
    _spec_or_error(Bot, spec)
    _spec_or_error(Bot.from_yaml, "\n".join(f"{json.dumps(k)}: x" for k in keys) or "{}")


def _billion_laughs() -> str:
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "name: x\nstrategy: sma_cross\nextras:\n" + "\n".join("  " + line for line in lines)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="deep-json"),
        pytest.param("{" + '"a":{' * 5000 + "}" * 5001, id="deep-json-object"),
        pytest.param("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 3000)), id="deep-yaml"),
        pytest.param("- " * 5000 + "x", id="deep-yaml-list"),
        pytest.param(_billion_laughs(), id="billion-laughs"),
        pytest.param("name: x\nstrategy: sma_cross\nparams: {fast: " + "9" * 5000 + "}",
                     id="huge-int"),
        pytest.param("name: " + "x" * 1_000_000, id="1MB-name"),
        pytest.param(json.dumps({"name": "x", "universe": [f"S{i}" for i in range(200_000)]}),
                     id="200k-symbols"),
        pytest.param("!!python/object/apply:os.system ['echo pwned']", id="python-tag"),
        pytest.param("name: x\nstrategy: sma_cross\nparams: {fast: abc}", id="param-type"),
        pytest.param("{1: a, b: c}", id="int-key"),
        pytest.param("name: x\nstrategy: sma_cross\nparams: {fast: [1]}", id="param-list"),
        pytest.param("name: x\nstrategy: sma_cross\nrisk: {max_position_qty: [1]}", id="risk-list"),
    ],
)  # fmt: skip
def test_deep_huge_and_hostile_specs_fail_fast_and_clean(text):
    t0 = time.monotonic()
    with pytest.raises((BotSpecError, ModelError)):
        Bot.from_yaml(text)
    assert time.monotonic() - t0 < 10


# --------------------------------------------------------------------- feeds

CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2024-01-02 09:30", "2024-13-45", "1e400", "NaN", "-0", "\ud800", "DEMO"]),
)
COLUMN_NAMES = st.sampled_from(
    ["ts", "timestamp", "date", "symbol", "ticker", "open", "high", "low", "close", "volume",
     "OPEN", " close ", "x", 0, 1.5]
)  # fmt: skip


@st.composite
def garbage_frames(draw):
    n = draw(st.integers(min_value=0, max_value=6))
    names = draw(st.lists(COLUMN_NAMES, max_size=8, unique_by=str))
    columns = {name: draw(st.lists(CELLS, min_size=n, max_size=n)) for name in names}
    try:
        return pd.DataFrame(columns)
    except UnicodeEncodeError:  # pandas' Arrow strings refuse lone surrogates: keep objects
        return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})


@st.composite
def almost_valid_frames(draw):
    n = draw(st.integers(min_value=1, max_value=6))
    base = pd.Timestamp("2024-01-02 14:30", tz="UTC")
    frame = pd.DataFrame(
        {
            "ts": [base + pd.Timedelta(minutes=i) for i in range(n)],
            "symbol": ["DEMO"] * n,
            "open": [100.0] * n,
            "high": [101.0] * n,
            "low": [99.0] * n,
            "close": [100.5] * n,
            "volume": [10] * n,
        }
    )
    column = draw(st.sampled_from(list(frame.columns)))
    row = draw(st.integers(min_value=0, max_value=n - 1))
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = draw(CELLS)
    return frame


def _feed_or_error(fn, *args, **kwargs):
    try:
        feed = fn(*args, **kwargs)
    except FeedError:
        return None
    assert isinstance(feed, ReplayFeed) and len(feed) > 0
    for group in feed.groups():  # a feed that builds also replays
        for bar in group:
            assert math.isfinite(bar.close) and bar.close > 0
    return feed


@FUZZ
@given(frame=st.one_of(garbage_frames(), almost_valid_frames()))
def test_replay_from_frame_is_a_feed_or_a_feed_error(frame):
    _feed_or_error(ReplayFeed.from_frame, frame)


@FUZZ
@given(frame=almost_valid_frames(), symbol=st.one_of(st.none(), CELLS))
def test_replay_symbol_argument(frame, symbol):
    _feed_or_error(ReplayFeed.from_frame, frame.drop(columns=["symbol"]), symbol=symbol)


@settings(FUZZ, max_examples=80)
@given(content=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode)),
       header=st.booleans())  # fmt: skip
def test_replay_from_csv_with_garbage_files(tmp_path_factory, content, header):
    path = tmp_path_factory.mktemp("csv") / "bars.csv"
    head = b"ts,symbol,open,high,low,close,volume\n" if header else b""
    path.write_bytes(head + content)
    _feed_or_error(ReplayFeed.from_csv, path)


# --------------------------------------------------------------------- PaperSession params

BAD_NUMBERS = [math.nan, math.inf, -math.inf, -1.0, -1e-9, 1e300]


@pytest.fixture
def sqlite_ledger(tmp_path):
    led = Ledger(url=f"sqlite:///{tmp_path / 'params.db'}")
    led.ensure_schema()
    yield led
    led.close()


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=str)
@pytest.mark.parametrize(
    "name", ["starting_cash", "duration_minutes", "speed", "poll_interval", "heartbeat_seconds"]
)
def test_session_params_nan_inf_negative_are_value_errors(sqlite_ledger, name, value):
    bot = Bot(name="params", strategy="sma_cross")
    with pytest.raises(ValueError, match=name):
        PaperSession(bot, ledger=sqlite_ledger, **{name: value}).start()
    session = PaperSession(bot, ledger=sqlite_ledger)
    with pytest.raises(ValueError, match=name):
        setattr(session, name, value)
    runs = sqlite_ledger.sql("SELECT count(*) AS n FROM paper_trading_runs")["n"].iloc[0]
    assert runs == 0


@pytest.mark.parametrize("value", ["100", None, [1], {"a": 1}], ids=repr)
def test_session_cash_of_the_wrong_type(sqlite_ledger, value):
    bot = Bot(name="params", strategy="sma_cross")
    with pytest.raises(ValueError, match="starting_cash"):
        PaperSession(bot, ledger=sqlite_ledger, starting_cash=value)
    runs = sqlite_ledger.sql("SELECT count(*) AS n FROM paper_trading_runs")["n"].iloc[0]
    assert runs == 0
