"""Bot specs: a strategy, its universe, its data and its ``risk:`` block.

A spec comes from a dict, a YAML/JSON string or file, or keyword arguments.
It is validated with errors that name the bad field, and it has a content hash:
the same spec always gives the same ``spec_hash``.

Besides our own shape, the first-bot tutorial's keys are accepted: ``kind``,
``description``, ``strategy_config`` (a YAML file with ``strategy`` and
``params``), ``engine``, ``metrics``, ``deploy_target`` and ``extras``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

import alphaswarm.live  # noqa: F401 - registers the live feed kinds a data: block may name
from alphaswarm.broker.spec import split_broker_spec
from alphaswarm.engine.broker import BrokerConfig
from alphaswarm.metrics import METRIC_ALIASES, STORED_METRICS
from alphaswarm.model import ModelError
from alphaswarm.risk.limits import RiskLimits
from alphaswarm.strategies import Strategy, resolve_strategy

if TYPE_CHECKING:
    from alphaswarm.data.base import Feed

DEFAULT_UNIVERSE = ["DEMO"]
#: Names a spec's ``metrics:`` entries may use: the stored metrics and their aliases.
METRIC_NAMES = (*STORED_METRICS, *METRIC_ALIASES)
#: Most values (scalars and containers) one spec may hold; YAML aliases count each use.
MAX_SPEC_VALUES = 100_000
DIRECTIONS = {">=": ">=", "above": ">=", "higher": ">=", "<=": "<=", "below": "<=", "lower": "<="}


#: The demo bot: an SMA crossover on the seeded synthetic DEMO feed that honestly passes
#: the paper gate (Sharpe about 2.2 over twenty trading days) and trades at once: its first
#: fill comes on bar 20 of a session, 20 s at the demo speed of 60. ``alphaswarm demo``,
#: ``alphaswarm serve --demo`` and the benchmarks use it.
DEMO_SPEC: dict[str, Any] = {
    "name": "sma-demo",
    "strategy": "sma_cross",
    "params": {"fast": 3, "slow": 10},
    "universe": ["DEMO"],
    "data": {"feed": "synthetic", "seed": 7, "interval": "1m"},
    "risk": {
        "max_order_notional": 50000,
        "max_position_qty": 1000,
        "max_drawdown_pct": 0.20,
        "max_daily_loss": 5000,
        "max_orders_per_minute": 30,
        "kill_switch_attached": True,
    },
}


class BotSpecError(ModelError):
    """A bot spec is malformed; the message names the field."""


def _check_keys(block: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted((k for k in block if k not in allowed), key=repr)
    if unknown:
        raise BotSpecError(
            f"{where}unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        )


def _check_text(value: str, where: str) -> None:
    """Text every ledger backend can store: valid Unicode (no lone surrogate), no NUL."""
    if "\x00" in value:
        raise BotSpecError(f"{where}: NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BotSpecError(
            f"{where}: not valid Unicode text (a lone surrogate at position {exc.start})"
        ) from None


def _check_json_value(
    value: Any, where: str, depth: int = 0, seen: list[int] | None = None
) -> None:
    seen = seen if seen is not None else [0]
    seen[0] += 1
    if seen[0] > MAX_SPEC_VALUES:
        raise BotSpecError(
            f"bot spec: more than {MAX_SPEC_VALUES} values (YAML aliases count every use)"
        )
    if depth > 20:
        raise BotSpecError(f"{where}: nested too deeply (more than 20 levels)")
    if isinstance(value, float) and not math.isfinite(value):
        raise BotSpecError(f"{where}: must be a finite number, got {value}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        raise BotSpecError(f"{where}: integer out of range ({value.bit_length()} bits)")
    if isinstance(value, str):
        _check_text(value, where)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise BotSpecError(f"{where}: keys must be strings, got {k!r}")
            _check_text(k, f"{where} key {k!r}")
            _check_json_value(v, f"{where}.{k}", depth + 1, seen)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json_value(v, f"{where}[{i}]", depth + 1, seen)
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise BotSpecError(f"{where}: unsupported value of type {type(value).__name__}")


def parse_document(text: str | bytes, what: str = "body") -> Any:
    """Parse ``text`` as JSON, else as YAML (safe loader).

    Raises
    ------
    BotSpecError
        When it is neither, naming where each attempt failed.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BotSpecError(f"{what}: not UTF-8 text ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as jexc:
        json_error = f"JSON: {jexc.msg} at line {jexc.lineno} column {jexc.colno}"
    except RecursionError:
        raise BotSpecError(f"{what}: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal over Python's 4300-digit limit
        json_error = f"JSON: {exc}"
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise BotSpecError(f"{what}: nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # a scalar YAML resolved but cannot build
        raise BotSpecError(f"{what}: {json_error}; YAML: {exc}") from None
    except yaml.YAMLError as yexc:
        mark = getattr(yexc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(yexc, "problem", None) or str(yexc).splitlines()[0]
        yaml_error = f"YAML: {problem}{where}"
    raise BotSpecError(f"{what} is neither JSON nor YAML ({json_error}; {yaml_error})")


class Bot:
    """A validated bot spec.

    Parameters
    ----------
    spec : dict, optional
        The spec; keyword arguments are merged over it.
    base_dir : str or Path, optional
        Where a relative ``strategy_config`` path is resolved (else the working
        directory).
    **fields
        Spec fields, e.g. ``Bot(name="demo", strategy="sma_cross", params={...})``.

    Examples
    --------
    >>> bot = Bot(name="sma-demo", strategy="sma_cross", params={"fast": 10, "slow": 30})
    >>> bot.universe
    ['DEMO']
    """

    TOP_KEYS: ClassVar[tuple[str, ...]] = (
        "name",
        "strategy",
        "params",
        "universe",
        "data",
        "risk",
        "broker",
        "gate",
        "kind",
        "description",
        "strategy_config",
        "engine",
        "metrics",
        "deploy_target",
        "extras",
    )
    GATE_KEYS: ClassVar[tuple[str, ...]] = (
        "min_sharpe",
        "max_drawdown",
        "max_age_days",
        "warn_age_hours",
        "min_trades_warning",
        "min_trades",
        "min_bars",
    )

    def __init__(
        self, spec: dict[str, Any] | None = None, *, base_dir: str | Path | None = None, **fields
    ) -> None:
        raw = dict(spec or {})
        raw.update(fields)
        self._strategy_cls: type[Strategy] | None = None
        self.spec = self._normalise(raw, Path(base_dir) if base_dir else None)
        self.spec_hash = hashlib.sha256(
            json.dumps(self.spec, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_yaml(cls, text: str, base_dir: str | Path | None = None) -> Bot:
        """Build from YAML (or JSON) text."""
        data = parse_document(text, "bot spec")
        if not isinstance(data, dict):
            raise BotSpecError(f"bot spec: expected a mapping, got {type(data).__name__}")
        return cls(data, base_dir=base_dir)

    @classmethod
    def load(cls, path: str | Path) -> Bot:
        """Read a YAML or JSON bot file; ``strategy_config`` resolves beside it."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BotSpecError(f"bot file {str(path)!r}: {exc.strerror or exc}") from None
        return cls.from_yaml(text, base_dir=path.parent)

    @classmethod
    def coerce(cls, bot: Bot | dict[str, Any] | str | Path) -> Bot:
        """Accept a Bot, a spec dict, YAML text or a path to a bot file."""
        if isinstance(bot, Bot):
            return bot
        if isinstance(bot, dict):
            return cls(bot)
        if isinstance(bot, Path) or (
            isinstance(bot, str) and "\n" not in bot and bot.endswith((".yaml", ".yml", ".json"))
        ):
            return cls.load(bot)
        if isinstance(bot, str):
            return cls.from_yaml(bot)
        raise BotSpecError(
            f"bot: expected a Bot, dict, YAML text or path, got {type(bot).__name__}"
        )

    # -- validation -----------------------------------------------------------------
    def _normalise(self, raw: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
        _check_keys(raw, self.TOP_KEYS, "bot spec: ")
        try:
            raw = copy.deepcopy(raw)
        except RecursionError:
            raise BotSpecError("bot spec: nested too deeply") from None
        strategy = raw.get("strategy")
        if isinstance(strategy, type) and issubclass(strategy, Strategy):
            self._strategy_cls = strategy
            raw["strategy"] = f"{strategy.__module__}:{strategy.__qualname__}"
        _check_json_value(raw, "bot spec")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BotSpecError("name: required, a non-empty string")
        if len(name) > 100:
            raise BotSpecError(f"name: at most 100 characters, got {len(name)}")
        if "strategy_config" in raw:
            self._load_strategy_config(raw, base_dir)
        if not raw.get("strategy"):
            raise BotSpecError("strategy: required (a built-in name or 'package.module:Class')")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise BotSpecError(f"params: expected a mapping, got {type(params).__name__}")
        if self._strategy_cls is None:
            self._strategy_cls = resolve_strategy(raw["strategy"])
        try:
            strategy_obj = self._strategy_cls(**params)
        except ModelError as exc:
            raise BotSpecError(str(exc)) from None
        except (TypeError, ValueError, OverflowError) as exc:  # a param of the wrong type
            raise BotSpecError(f"params: {type(exc).__name__}: {exc}") from None
        universe = raw.get("universe", DEFAULT_UNIVERSE)
        if isinstance(universe, dict) and "symbols" in universe:
            universe = universe["symbols"]
        if isinstance(universe, str):
            universe = [universe]
        if not isinstance(universe, list) or not universe:
            raise BotSpecError("universe: expected a non-empty list of symbols")
        for i, sym in enumerate(universe):
            if not isinstance(sym, str) or not sym.strip() or len(sym) > 40:
                raise BotSpecError(f"universe[{i}]: expected a symbol string, got {sym!r}")
        if len(set(universe)) != len(universe):
            raise BotSpecError("universe: symbols must be unique")
        data = raw.get("data") or {"feed": "synthetic", "seed": 7, "interval": "1m"}
        if not isinstance(data, dict):
            raise BotSpecError(f"data: expected a mapping, got {type(data).__name__}")
        risk = raw.get("risk") or {}
        if not isinstance(risk, dict):
            raise BotSpecError(f"risk: expected a mapping, got {type(risk).__name__}")
        try:
            RiskLimits.from_spec(risk, universe)
            split_broker_spec(raw.get("broker"))
        except ModelError as exc:
            raise BotSpecError(str(exc)) from None
        except (TypeError, ValueError, OverflowError) as exc:  # a value of the wrong type
            raise BotSpecError(f"risk/broker: {type(exc).__name__}: {exc}") from None
        spec: dict[str, Any] = {
            "name": name.strip(),
            "strategy": raw["strategy"],
            "params": strategy_obj.params,
            "universe": list(universe),
            "data": data,
            "risk": risk,
        }
        for key in ("broker", "gate", "description", "extras"):
            if raw.get(key) is not None:
                spec[key] = raw[key]
        if spec.get("gate") is not None:
            if not isinstance(spec["gate"], dict):
                raise BotSpecError("gate: expected a mapping")
            _check_keys(spec["gate"], self.GATE_KEYS, "gate: ")
        if spec.get("extras") is not None and not isinstance(spec["extras"], dict):
            raise BotSpecError("extras: expected a mapping of free-form user data")
        self._check_choice(raw, spec, "kind", ("trading",))
        self._check_choice(raw, spec, "engine", ("event_driven",))
        self._check_choice(raw, spec, "deploy_target", ("paper", "backtest_only"))
        if raw.get("metrics") is not None:
            spec["metrics"] = self._normalise_metrics(raw["metrics"])
        return spec

    @staticmethod
    def _check_choice(
        raw: dict[str, Any], spec: dict[str, Any], key: str, allowed: tuple[str, ...]
    ) -> None:
        value = raw.get(key)
        if value is None:
            return
        if value not in allowed:
            raise BotSpecError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
        spec[key] = value

    def _load_strategy_config(self, raw: dict[str, Any], base_dir: Path | None) -> None:
        ref = raw.pop("strategy_config")
        if not isinstance(ref, str) or not ref.strip():
            raise BotSpecError("strategy_config: expected a path to a YAML file")
        path = Path(ref)
        candidates = [path] if path.is_absolute() else [(base_dir or Path.cwd()) / path]
        if not path.is_absolute() and base_dir is not None:
            candidates.append(Path.cwd() / path)
        for candidate in candidates:
            if candidate.is_file():
                break
        else:
            raise BotSpecError(
                f"strategy_config: file {ref!r} not found (looked in "
                f"{', '.join(str(c.parent) for c in candidates)})"
            )
        try:
            conf = parse_document(candidate.read_text(encoding="utf-8"), "strategy_config")
        except OSError as exc:
            raise BotSpecError(f"strategy_config: {exc}") from None
        if not isinstance(conf, dict):
            raise BotSpecError("strategy_config: expected a mapping with strategy and params")
        _check_keys(conf, ("strategy", "params", "name", "description"), "strategy_config: ")
        if raw.get("strategy") and raw["strategy"] != conf.get("strategy"):
            raise BotSpecError(
                "strategy: given both inline and in strategy_config, and they differ"
            )
        raw["strategy"] = conf.get("strategy")
        raw["params"] = {**(conf.get("params") or {}), **(raw.get("params") or {})}

    @staticmethod
    def _normalise_metrics(metrics: Any) -> list[dict[str, Any]]:
        if not isinstance(metrics, list):
            raise BotSpecError("metrics: expected a list of names or {name, threshold, direction}")
        out = []
        for i, item in enumerate(metrics):
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, dict):
                raise BotSpecError(f"metrics[{i}]: expected a name or a mapping")
            _check_keys(item, ("name", "threshold", "direction"), f"metrics[{i}]: ")
            name = item.get("name")
            if name not in METRIC_NAMES:
                raise BotSpecError(
                    f"metrics[{i}].name: {name!r} is not one of {', '.join(METRIC_NAMES)}"
                )
            entry: dict[str, Any] = {"name": name}
            if item.get("threshold") is not None:
                threshold = item["threshold"]
                if isinstance(threshold, bool) or not isinstance(threshold, int | float):
                    raise BotSpecError(f"metrics[{i}].threshold: expected a number")
                direction = item.get("direction", "<=" if name == "max_drawdown" else ">=")
                if direction not in DIRECTIONS:
                    raise BotSpecError(
                        f"metrics[{i}].direction: {direction!r} is not one of "
                        f"{', '.join(DIRECTIONS)}"
                    )
                entry["threshold"] = float(threshold)
                entry["direction"] = DIRECTIONS[direction]
            out.append(entry)
        return out

    # -- accessors ------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Bot name (its identity in the ledger)."""
        return self.spec["name"]

    @property
    def universe(self) -> list[str]:
        """Symbols the bot trades."""
        return list(self.spec["universe"])

    @property
    def version(self) -> str:
        """Short content hash of the spec: the same spec gives the same version."""
        return self.spec_hash[:12]

    @property
    def kill_switch_attached(self) -> bool:
        """Whether the risk block attaches the kill switch."""
        return bool(self.spec["risk"].get("kill_switch_attached", False))

    def strategy_class(self) -> type[Strategy]:
        """The Strategy class this bot runs."""
        if self._strategy_cls is None:
            self._strategy_cls = resolve_strategy(self.spec["strategy"])
        return self._strategy_cls

    def make_strategy(self) -> Strategy:
        """A fresh strategy instance with the bot's params."""
        return self.strategy_class()(**self.spec["params"])

    def risk_limits(self) -> RiskLimits:
        """The bot's RiskLimits."""
        return RiskLimits.from_spec(self.spec["risk"], self.universe)

    def broker_config(self) -> BrokerConfig:
        """The bot's fill model settings."""
        return BrokerConfig.from_dict(split_broker_spec(self.spec.get("broker"))[1])

    def make_feed(self) -> Feed:
        """The feed the bot's ``data:`` block describes."""
        from alphaswarm.data import make_feed

        return make_feed(self.spec["data"], self.universe)

    def to_yaml(self) -> str:
        """The normalised spec as YAML."""
        return yaml.safe_dump(self.spec, sort_keys=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bot) and other.spec_hash == self.spec_hash

    def __hash__(self) -> int:
        return hash(self.spec_hash)

    def __repr__(self) -> str:
        return (
            f"Bot(name={self.name!r}, strategy={self.spec['strategy']!r}, "
            f"universe={self.universe!r}, version={self.version!r})"
        )
