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
from alphaswarm.bot_schema import (
    DIRECTIONS,
    METRIC_NAMES,
    RISK_KEYS,
    STRATEGY_CONFIG_KEYS,
    BotSpec,
    GateSpec,
    MetricSpec,
)
from alphaswarm.broker.spec import split_broker_spec
from alphaswarm.engine.broker import BrokerConfig
from alphaswarm.model import ModelError
from alphaswarm.risk.limits import RiskLimits
from alphaswarm.schema import Problem, did_you_mean, keys, unknown_keys, validate
from alphaswarm.strategies import Strategy, resolve_strategy

if TYPE_CHECKING:
    from alphaswarm.data.base import Feed

DEFAULT_UNIVERSE = ["DEMO"]
#: The order of a normalised spec's keys (the spec hash does not depend on it).
_SPEC_ORDER = (
    "name", "strategy", "params", "universe", "data", "risk", "broker", "gate", "description",
    "extras", "kind", "engine", "deploy_target", "metrics",
)  # fmt: skip
__all__ = [
    "DEFAULT_UNIVERSE", "DEMO_SPEC", "DIRECTIONS", "MAX_SPEC_VALUES", "METRIC_NAMES", "Bot",
    "BotSpecError", "parse_document", "spec_problems",
]  # fmt: skip
#: Most values (scalars and containers) one spec may hold; YAML aliases count each use.
MAX_SPEC_VALUES = 100_000


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
    """A bot spec is malformed; the message names the field (every field, when several are).

    Parameters
    ----------
    message : str
        The problems, each starting with the field it names.
    unknown : dict, optional
        Each unknown key (dotted for nested blocks) and the declared key closest to it
        (``None`` when none is close).
    """

    def __init__(self, message: str, unknown: dict[str, str | None] | None = None) -> None:
        super().__init__(message)
        self.unknown = dict(unknown or {})


def _check_keys(block: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    problem = unknown_keys(block, allowed, where)
    if problem is not None:
        raise BotSpecError(problem.message, _dotted(where, did_you_mean(block, allowed)))


def _dotted(where: str, unknown: dict[str, Any]) -> dict[str, Any]:
    return {f"{where}.{k}" if where else k: v for k, v in unknown.items()}


def spec_problems(raw: dict[str, Any]) -> tuple[list[Problem], dict[str, str | None]]:
    """Every problem of ``raw`` that :class:`~alphaswarm.bot_schema.BotSpec` declares.

    Unknown keys of the spec and of its ``gate:``, ``risk:`` and ``metrics:`` blocks,
    wrong types and choices, all at once; ``null`` is the same as an absent key.

    Returns
    -------
    (list of Problem, dict)
        The problems, and each unknown key with its did-you-mean suggestion.
    """
    present = {k: v for k, v in raw.items() if v is not None}
    _, problems = validate(BotSpec, present)
    problems = [
        Problem(p.field, f"bot spec: {p.message}", p.kind) if not p.field else p for p in problems
    ]
    unknown = did_you_mean(present, keys(BotSpec))
    blocks = {"gate": keys(GateSpec), "risk": RISK_KEYS}
    for where, allowed in blocks.items():
        block = present.get(where)
        if isinstance(block, dict):
            unknown.update(_dotted(where, did_you_mean(block, allowed)))
            if where == "risk" and (problem := unknown_keys(block, allowed, where)):
                problems.append(problem)  # gate's are reported by validate()
    metrics = present.get("metrics")
    for i, item in enumerate(metrics if isinstance(metrics, list) else []):
        entry = {"name": item} if isinstance(item, str) else item
        where = f"metrics[{i}]"
        if not isinstance(entry, dict):
            problems.append(Problem(where, f"{where}: expected a name or a mapping", "type"))
            continue
        problems.extend(validate(MetricSpec, entry, where)[1])
        unknown.update(_dotted(where, did_you_mean(entry, keys(MetricSpec))))
    return problems, unknown


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

    #: The keys of a spec, declared by :class:`alphaswarm.bot_schema.BotSpec`.
    TOP_KEYS: ClassVar[tuple[str, ...]] = keys(BotSpec)
    #: The keys of a ``gate:`` block, declared by :class:`alphaswarm.bot_schema.GateSpec`.
    GATE_KEYS: ClassVar[tuple[str, ...]] = keys(GateSpec)

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
        problems, unknown = spec_problems(raw)
        if problems:
            raise BotSpecError("; ".join(p.message for p in problems), unknown)
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
        if raw.get("strategy_config") is not None:
            self._load_strategy_config(raw, base_dir)
        if not raw.get("strategy"):
            raise BotSpecError("strategy: required (a built-in name or 'package.module:Class')")
        universe = self._universe(raw.get("universe", DEFAULT_UNIVERSE))
        spec: dict[str, Any] = {
            "name": name.strip(),
            "strategy": raw["strategy"],
            "params": self._strategy_params(raw["strategy"], raw.get("params") or {}),
            "universe": universe,
            "data": raw.get("data") or {"feed": "synthetic", "seed": 7, "interval": "1m"},
            "risk": raw.get("risk") or {},
        }
        try:
            RiskLimits.from_spec(spec["risk"], universe)
            split_broker_spec(raw.get("broker"))
        except ModelError as exc:
            raise BotSpecError(str(exc)) from None
        except (TypeError, ValueError, OverflowError) as exc:  # a value of the wrong type
            raise BotSpecError(f"risk/broker: {type(exc).__name__}: {exc}") from None
        for key in ("broker", "gate", "description", "extras", "kind", "engine", "deploy_target"):
            if raw.get(key) is not None:
                spec[key] = raw[key]
        if raw.get("metrics") is not None:
            spec["metrics"] = [self._metric(item) for item in raw["metrics"]]
        return {k: spec[k] for k in _SPEC_ORDER if k in spec}

    def _strategy_params(self, strategy: Any, params: dict[str, Any]) -> dict[str, Any]:
        """The strategy's params, normalised by the strategy class itself."""
        if not isinstance(params, dict):
            raise BotSpecError(f"params: expected a mapping, got {type(params).__name__}")
        if self._strategy_cls is None:
            self._strategy_cls = resolve_strategy(strategy)
        try:
            return self._strategy_cls(**params).params
        except ModelError as exc:
            raise BotSpecError(str(exc)) from None
        except (TypeError, ValueError, OverflowError) as exc:  # a param of the wrong type
            raise BotSpecError(f"params: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _universe(universe: Any) -> list[str]:
        """A list of unique symbols from a list, one symbol or ``{symbols: [...]}``."""
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
        return list(universe)

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
        _check_keys(conf, STRATEGY_CONFIG_KEYS, "strategy_config")
        if raw.get("strategy") and raw["strategy"] != conf.get("strategy"):
            raise BotSpecError(
                "strategy: given both inline and in strategy_config, and they differ"
            )
        raw["strategy"] = conf.get("strategy")
        raw["params"] = {**(conf.get("params") or {}), **(raw.get("params") or {})}

    @staticmethod
    def _metric(item: str | dict[str, Any]) -> dict[str, Any]:
        """One ``metrics:`` entry (already checked by :func:`spec_problems`), normalised."""
        item = {"name": item} if isinstance(item, str) else item
        entry: dict[str, Any] = {"name": item["name"]}
        if item.get("threshold") is not None:
            default = "<=" if item["name"] == "max_drawdown" else ">="
            entry["threshold"] = float(item["threshold"])
            entry["direction"] = DIRECTIONS[item.get("direction") or default]
        return entry

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
