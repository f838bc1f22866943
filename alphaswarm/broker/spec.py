"""The ``broker:`` block of a bot spec: which broker a paper session trades with.

``broker: {kind: simulated, ...fill model...}`` (the default, ``kind`` may be
left out) is the :class:`~alphaswarm.engine.broker.SimulatedBroker`.
``broker: {kind: alpaca_paper, key_env, secret_env, calendar, urls, timeout, shadow}``
routes orders to an Alpaca paper account through
:class:`~alphaswarm.broker.alpaca.AlpacaPaperBroker`; ``shadow: true`` runs the
fill model (the block's fill-model keys) beside it on the same orders
(:mod:`alphaswarm.broker.shadow`). ``broker: {kind: ccxt_sandbox, exchange, key_env,
secret_env, urls, timeout, shadow}`` trades in a ccxt exchange's sandbox
(:class:`~alphaswarm.broker.ccxt_sandbox.CcxtSandboxBroker`). Keys never appear in a
spec: only the names of the environment variables holding them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from alphaswarm.engine.broker import BrokerConfig, SimulatedBroker
from alphaswarm.model import ModelError

if TYPE_CHECKING:
    from alphaswarm.broker.bridge import EngineBroker

log = logging.getLogger(__name__)

BROKER_KINDS = ("simulated", "alpaca_paper", "ccxt_sandbox")
ALPACA_OPTIONS = ("key_env", "secret_env", "calendar", "urls", "timeout")
CCXT_OPTIONS = ("exchange", "key_env", "secret_env", "urls", "timeout")


def split_broker_spec(block: dict[str, Any] | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Split a ``broker:`` block into its kind, fill-model settings and venue options.

    Parameters
    ----------
    block : dict or None
        The bot's ``broker:`` block.

    Returns
    -------
    (str, dict, dict)
        The kind, the :class:`BrokerConfig` keys, and the venue's own options.

    Raises
    ------
    ModelError
        For an unknown kind or key, or a key value where an environment variable
        name belongs.
    """
    if block is not None and not isinstance(block, dict):
        raise ModelError(f"broker: expected a mapping, got {type(block).__name__}")
    data = dict(block or {})
    kind = data.pop("kind", "simulated")
    if kind not in BROKER_KINDS:
        raise ModelError(f"broker.kind: {kind!r} is not one of {', '.join(BROKER_KINDS)}")
    options: dict[str, Any] = {}
    if kind != "simulated":
        for name in ALPACA_OPTIONS if kind == "alpaca_paper" else CCXT_OPTIONS:
            if name in data:
                options[name] = data.pop(name)
        shadow = data.pop("shadow", False)
        if not isinstance(shadow, bool):
            raise ModelError(f"broker.shadow: expected true or false, got {shadow!r}")
        options["shadow"] = shadow
        for name in ("key_env", "secret_env"):
            value = options.get(name)
            if value is not None and (not isinstance(value, str) or not value.isidentifier()):
                raise ModelError(f"broker.{name}: the name of an environment variable, not a key")
    BrokerConfig.from_dict(data)  # names unknown keys
    return kind, data, options


def make_session_broker(
    block: dict[str, Any] | None,
    starting_cash: float,
    config: BrokerConfig,
    id_prefix: str,
) -> SimulatedBroker | EngineBroker:
    """The broker a paper session's engine trades with.

    For ``alpaca_paper`` the account is read back first (open orders of this run
    and positions), so trading resumes from what the broker holds.
    """
    kind, _, options = split_broker_spec(block)
    if kind == "simulated":
        return SimulatedBroker(starting_cash, config, id_prefix=id_prefix)
    from alphaswarm.broker.alpaca import AlpacaPaperBroker
    from alphaswarm.broker.bridge import EngineBroker

    shadow = options.pop("shadow", False)
    if kind == "ccxt_sandbox":
        from alphaswarm.broker.ccxt_sandbox import CcxtSandboxBroker

        sandbox = CcxtSandboxBroker(id_prefix, **options)
        return EngineBroker(sandbox, starting_cash, config, id_prefix=id_prefix, shadow=shadow)
    broker = AlpacaPaperBroker(id_prefix, **options)
    try:
        report = broker.reconcile()
    except Exception:
        broker.close()
        raise
    if report.foreign:
        log.warning(
            "alpaca paper account holds %d open order(s) of others (%d of earlier runs); "
            "they are left alone and not counted against this run's limits",
            len(report.foreign),
            len(report.other_runs),
        )
    bridge = EngineBroker(broker, starting_cash, config, id_prefix=id_prefix, shadow=shadow)
    bridge.adopt_positions(broker.positions())
    bridge.adopt_orders(report.adopted)
    return bridge
