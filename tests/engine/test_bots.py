"""Bot specs: validation naming the field, the first-bot tutorial shape, content hashes."""

from __future__ import annotations

import textwrap

import pytest

from alphaswarm.bots import Bot, BotSpecError, parse_document
from alphaswarm.model import ModelError
from alphaswarm.strategies import SmaCross

ISSUE_YAML = """
name: sma-demo
strategy: sma_cross
params: {fast: 10, slow: 30}
universe: [DEMO]
data: {feed: synthetic, seed: 7, interval: 1m}
risk: {max_order_notional: 50000, max_position_qty: 1000, max_drawdown_pct: 0.20,
       max_daily_loss: 5000, max_orders_per_minute: 30, kill_switch_attached: true}
"""

FIRST_BOT_YAML = """
name: MyFirstBot
kind: trading
description: My first trading bot
strategy_config: configs/strategies/my_first_strategy.yaml
engine: event_driven
risk:
  max_position_pct: 0.5
  max_daily_loss_pct: 0.02
  kill_switch_attached: true
metrics: [sharpe, sortino, max_drawdown, hit_rate]
deploy_target: paper
"""

STRATEGY_YAML = """
strategy: sma_cross
params: {fast: 5, slow: 20}
"""


def spec(**over):
    base = {"name": "t", "strategy": "sma_cross", "params": {"fast": 3, "slow": 8}}
    base.update(over)
    return base


# ----------------------------------------------------------------- the issue's shape


def test_issue_spec_parses():
    bot = Bot.from_yaml(ISSUE_YAML)
    assert bot.name == "sma-demo" and bot.universe == ["DEMO"]
    assert bot.spec["params"]["fast"] == 10 and bot.spec["params"]["slow"] == 30
    assert bot.kill_switch_attached is True
    risk = bot.risk_limits()
    assert risk.max_order_notional == 50_000 and risk.max_orders_per_minute == 30
    assert risk.universe == ["DEMO"]
    assert isinstance(bot.make_strategy(), SmaCross)
    assert bot.make_strategy() is not bot.make_strategy()
    assert Bot.from_yaml(bot.to_yaml()) == bot


def test_unknown_top_key_named_with_allowed_list():
    pattern = r"^bot spec: unknown key\(s\) 'stratgy' \(did you mean 'strategy'\?\); allowed: name"
    with pytest.raises(BotSpecError, match=pattern):
        Bot(spec(stratgy="x"))


def test_every_unknown_key_reported_at_once_with_suggestions():
    bad = spec(
        stratgy="x",
        colour="red",
        gate={"min_sharp": 1, "min_trades": 2},
        risk={"max_oder_qty": 1},
        metrics=["sharpe", {"name": "sortino", "thresold": 1}],
    )
    with pytest.raises(BotSpecError) as caught:
        Bot(bad)
    message = str(caught.value)
    for part in (
        "'stratgy' (did you mean 'strategy'?)",
        "'colour'",
        "gate: unknown key(s) 'min_sharp' (did you mean 'min_sharpe'?)",
        "risk: unknown key(s) 'max_oder_qty' (did you mean 'max_order_qty'?)",
        "metrics[1]: unknown key(s) 'thresold' (did you mean 'threshold'?)",
    ):
        assert part in message, (part, message)
    assert caught.value.unknown == {
        "stratgy": "strategy",
        "colour": None,
        "gate.min_sharp": "min_sharpe",
        "risk.max_oder_qty": "max_order_qty",
        "metrics[1].thresold": "threshold",
    }


def test_bad_values_of_several_fields_reported_together():
    with pytest.raises(BotSpecError) as caught:
        Bot(spec(kind="robot", engine="vectorized", gate={"min_bars": "many"}))
    message = str(caught.value)
    assert "kind: 'robot' is not one of trading" in message
    assert "engine: 'vectorized' is not one of event_driven" in message
    assert "gate.min_bars: expected a number" in message


def test_top_keys_are_the_declared_schema():
    from alphaswarm.bot_schema import BotSpec
    from alphaswarm.schema import json_schema

    schema = json_schema(BotSpec)
    assert tuple(schema["properties"]) == Bot.TOP_KEYS
    assert schema["properties"]["name"]["maxLength"] == 100
    assert schema["properties"]["gate"]["additionalProperties"] is False
    assert tuple(schema["properties"]["gate"]["properties"]) == Bot.GATE_KEYS


@pytest.mark.parametrize(
    ("over", "pattern"),
    [
        ({"name": ""}, r"^name: required"),
        ({"name": "x" * 101}, r"^name: at most 100"),
        ({"strategy": None}, r"^strategy: required"),
        ({"params": [1]}, r"^params: expected a mapping"),
        ({"params": {"fast": 50, "slow": 10}}, r"^params\.fast: must be < slow"),
        ({"params": {"fats": 5}}, r"^params: unknown parameter\(s\) fats .* allowed: "),
        ({"universe": []}, r"^universe: expected a non-empty list"),
        ({"universe": ["A", 3]}, r"^universe\[1\]: expected a symbol"),
        ({"universe": ["A", "A"]}, r"^universe: symbols must be unique"),
        ({"data": "synthetic"}, r"^data: expected a mapping"),
        ({"risk": {"max_oder_qty": 1}}, r"^risk: unknown key\(s\) 'max_oder_qty'"),
        ({"risk": {"max_order_qty": -1}}, r"^risk\.max_order_qty: must be"),
        ({"broker": {"slipage_bps": 1}}, r"^broker: unknown key\(s\) slipage_bps"),
        ({"broker": {"intrabar_rule": "lucky"}}, r"^intrabar_rule: 'lucky'"),
        ({"gate": {"min_sharp": 1}}, r"^gate: unknown key\(s\) 'min_sharp'"),
        ({"kind": "robot"}, r"^kind: 'robot' is not one of trading"),
        ({"engine": "vectorized"}, r"^engine: 'vectorized' is not one of event_driven"),
        ({"deploy_target": "k8s"}, r"^deploy_target: 'k8s' is not one of paper, backtest_only"),
        ({"extras": [1, 2]}, r"^extras: expected a mapping"),
        ({"params": {"fast": float("nan")}}, r"bot spec\.params\.fast: must be a finite"),
        ({"metrics": "sharpe"}, r"^metrics: expected a list"),
        ({"metrics": ["sharpe", "alpha"]}, r"^metrics\[1\]\.name: 'alpha' is not one of"),
        ({"metrics": [{"name": "sharpe", "threshold": "1"}]}, r"^metrics\[0\]\.threshold"),
        (
            {"metrics": [{"name": "sharpe", "threshold": 1, "direction": "up"}]},
            r"^metrics\[0\]\.direction: 'up'",
        ),
        ({"metrics": [{"name": "sharpe", "thresh": 1}]}, r"^metrics\[0\]: unknown key"),
        ({"metrics": [{"threshold": 1}]}, r"^metrics\[0\]\.name: required"),
    ],
)
def test_bad_fields_named(over, pattern):
    with pytest.raises(BotSpecError, match=pattern):
        Bot(spec(**over))


def test_bot_spec_errors_are_model_errors():
    assert issubclass(BotSpecError, ModelError)


# ------------------------------------------------------------- first-bot tutorial


@pytest.fixture
def first_bot_file(tmp_path, monkeypatch):
    bots = tmp_path / "bots"
    (bots / "configs" / "strategies").mkdir(parents=True)
    (bots / "configs" / "strategies" / "my_first_strategy.yaml").write_text(STRATEGY_YAML)
    path = bots / "my_first_bot.yaml"
    path.write_text(FIRST_BOT_YAML)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the config must resolve beside the bot file, not the cwd
    return path


def test_first_bot_spec(first_bot_file):
    bot = Bot.load(first_bot_file)
    s = bot.spec
    assert s["name"] == "MyFirstBot"
    assert s["kind"] == "trading" and s["engine"] == "event_driven"
    assert s["description"] == "My first trading bot"
    assert s["deploy_target"] == "paper"
    assert s["strategy"] == "sma_cross"
    assert s["params"]["fast"] == 5 and s["params"]["slow"] == 20
    assert "strategy_config" not in s
    assert [m["name"] for m in s["metrics"]] == ["sharpe", "sortino", "max_drawdown", "hit_rate"]
    risk = bot.risk_limits()
    assert risk.max_position_pct == 0.5 and risk.max_daily_loss_pct == 0.02
    assert bot.kill_switch_attached


def test_first_bot_via_coerce_of_a_path_string(first_bot_file):
    assert Bot.coerce(str(first_bot_file)) == Bot.load(first_bot_file)


def test_strategy_config_missing_says_where_it_looked(first_bot_file):
    first_bot_file.write_text(FIRST_BOT_YAML.replace("my_first_strategy", "nope"))
    with pytest.raises(BotSpecError, match=r"^strategy_config: file '.*nope.yaml' not found"):
        Bot.load(first_bot_file)


def test_strategy_config_inline_params_override(first_bot_file):
    text = FIRST_BOT_YAML + "params: {fast: 7}\n"
    first_bot_file.write_text(text)
    assert Bot.load(first_bot_file).spec["params"]["fast"] == 7
    assert Bot.load(first_bot_file).spec["params"]["slow"] == 20


def test_strategy_config_conflicting_strategy(first_bot_file):
    first_bot_file.write_text(FIRST_BOT_YAML + "strategy: buy_and_hold\n")
    with pytest.raises(BotSpecError, match=r"^strategy: given both inline and in strategy_config"):
        Bot.load(first_bot_file)


def test_strategy_config_unknown_key(first_bot_file):
    cfg = first_bot_file.parent / "configs" / "strategies" / "my_first_strategy.yaml"
    cfg.write_text(STRATEGY_YAML + "paramz: {}\n")
    with pytest.raises(BotSpecError, match=r"^strategy_config: unknown key\(s\) 'paramz'"):
        Bot.load(first_bot_file)


def test_metrics_with_threshold_and_direction():
    bot = Bot(
        spec(
            metrics=[
                "sharpe",
                {"name": "sortino", "threshold": 1, "direction": "above"},
                {"name": "max_drawdown", "threshold": 0.2},
                {"name": "win_rate", "threshold": 0.4, "direction": "lower"},
            ]
        )
    )
    assert bot.spec["metrics"] == [
        {"name": "sharpe"},
        {"name": "sortino", "threshold": 1.0, "direction": ">="},
        {"name": "max_drawdown", "threshold": 0.2, "direction": "<="},
        {"name": "win_rate", "threshold": 0.4, "direction": "<="},
    ]


def test_extras_are_kept():
    bot = Bot(spec(extras={"owner": "me", "tags": ["a", "b"]}))
    assert bot.spec["extras"] == {"owner": "me", "tags": ["a", "b"]}


# ------------------------------------------------------------------- spec hash


def test_same_spec_same_hash():
    a = Bot(spec(universe=["A", "B"], risk={"max_order_qty": 5}))
    b = Bot({"risk": {"max_order_qty": 5}, "universe": ["A", "B"], **spec()})
    assert a.spec_hash == b.spec_hash and a == b and hash(a) == hash(b)
    assert a.version == a.spec_hash[:12] and len(a.spec_hash) == 64


def test_defaults_filled_in_before_hashing():
    explicit = Bot(spec(params={"fast": 10, "slow": 30, "allocation": 0.2}))
    implicit = Bot(spec(params={}))
    assert explicit.spec_hash == implicit.spec_hash


@pytest.mark.parametrize(
    "over",
    [
        {"params": {"fast": 4, "slow": 8}},
        {"name": "u"},
        {"universe": ["B"]},
        {"risk": {"max_order_qty": 6}},
        {"data": {"feed": "synthetic", "seed": 8}},
        {"broker": {"slippage_bps": 1}},
    ],
)
def test_changed_spec_changes_hash(over):
    assert Bot(spec(**over)).spec_hash != Bot(spec()).spec_hash


# ------------------------------------------------------------ strategy reference


def test_os_system_is_refused(monkeypatch):
    monkeypatch.delenv("ALPHASWARM_STRATEGY_MODULES", raising=False)
    with pytest.raises(ModelError, match=r"^strategy: importing 'os' is not allowed"):
        Bot(spec(strategy="os:system", params={}))


def test_strategy_class_reference_and_prefix(monkeypatch):
    monkeypatch.setenv("ALPHASWARM_STRATEGY_MODULES", "alphaswarm")
    bot = Bot(spec(strategy="alphaswarm.strategies.builtin:MeanReversion", params={"window": 5}))
    assert bot.make_strategy().params["window"] == 5
    by_class = Bot(spec(strategy=SmaCross))
    assert by_class.spec["strategy"] == "alphaswarm.strategies.builtin:SmaCross"


# -------------------------------------------------------------------- documents


def test_parse_document_json_and_yaml():
    assert parse_document('{"a": 1}') == {"a": 1}
    assert parse_document("a: [1, 2]") == {"a": [1, 2]}
    with pytest.raises(BotSpecError, match=r"^body is neither JSON nor YAML \(JSON: .*; YAML: "):
        parse_document("a: [1, 2")


def test_from_yaml_needs_a_mapping():
    with pytest.raises(BotSpecError, match=r"^bot spec: expected a mapping, got list"):
        Bot.from_yaml("- 1\n- 2\n")


def test_coerce_dict_text_and_errors(tmp_path):
    text = textwrap.dedent(
        """
        name: c
        strategy: buy_and_hold
        """
    )
    assert Bot.coerce(text).name == "c"
    assert Bot.coerce({"name": "c", "strategy": "buy_and_hold"}) == Bot.coerce(text)
    with pytest.raises(BotSpecError, match=r"^bot file '.*missing.yaml': "):
        Bot.coerce(str(tmp_path / "missing.yaml"))
    with pytest.raises(BotSpecError, match=r"^bot: expected a Bot"):
        Bot.coerce(42)
