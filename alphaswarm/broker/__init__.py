"""Brokers behind one interface: the simulator and real paper accounts.

:class:`~alphaswarm.broker.base.Broker` is what the kit asks of a broker;
:mod:`alphaswarm.broker.simulated` puts the fill model behind it and
:mod:`alphaswarm.broker.alpaca` an Alpaca paper account (``pip install
'alphaswarm[alpaca]'``) and :mod:`alphaswarm.broker.ccxt_sandbox` a ccxt exchange's
sandbox (``'alphaswarm[ccxt]'``). :class:`~alphaswarm.broker.bridge.EngineBroker` lets
the bar engine trade through any of them, optionally with the fill model running
beside the broker (:mod:`alphaswarm.broker.shadow`, compared by
:func:`alphaswarm.research.shadow_report.shadow_report`).
"""

from __future__ import annotations

from alphaswarm.broker.base import (
    Broker,
    BrokerAccount,
    BrokerAuthError,
    BrokerError,
    BrokerUnavailable,
    CancelConfirmation,
    OrderChange,
    OrderUpdate,
    ReconcileReport,
    UpdateKind,
)

__all__ = [
    "Broker",
    "BrokerAccount",
    "BrokerAuthError",
    "BrokerError",
    "BrokerUnavailable",
    "CancelConfirmation",
    "OrderChange",
    "OrderUpdate",
    "ReconcileReport",
    "UpdateKind",
]
