"""The broker interface: what the kit asks of any broker, simulated or real.

A :class:`Broker` takes orders (``submit``, ``cancel``, ``replace``,
``cancel_all``), reports what it holds (``open_orders``, ``positions``,
``account``) and hands over what happened to orders since the last call
(``poll_updates``) as :class:`OrderUpdate` records. Orders, fills and positions
are the kit's own :mod:`alphaswarm.model` objects; a real broker's order id is
kept beside ours (:meth:`Broker.broker_order_id`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from alphaswarm.model import field_values

if TYPE_CHECKING:
    from datetime import datetime

    from alphaswarm.model import Fill, Order, OrderRequest, Position


class BrokerError(RuntimeError):
    """A broker call failed in a way the caller must hear about."""


class BrokerAuthError(BrokerError):
    """The broker refused the API keys."""


class BrokerUnavailable(BrokerError):
    """The broker did not answer: the broker refuses new orders until reconciled."""


class UpdateKind(StrEnum):
    """What happened to an order (the kit's names for a broker's order events)."""

    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REPLACED = "replaced"


@dataclass(slots=True)
class OrderUpdate:
    """One change of an order's state reported by a broker.

    Parameters
    ----------
    kind : UpdateKind
        What happened.
    order : Order
        The order after the change (the kit's object, updated in place).
    fill : Fill or None
        The execution, for ``partially_filled`` and ``filled``.
    broker_order_id : str
        The broker's id of the order (our id for the simulated broker).
    reason : str
        The broker's reason, for rejections, cancellations and expiries.
    at : datetime or None
        When the broker says it happened.
    status : str
        The order's status right after this change (the order object moves on).
    """

    kind: UpdateKind
    order: Order
    fill: Fill | None = None
    broker_order_id: str = ""
    reason: str = ""
    at: datetime | None = None
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            self.status = self.order.status.value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return {
            "kind": self.kind.value,
            "order": self.order.to_dict(),
            "fill": self.fill.to_dict() if self.fill is not None else None,
            "broker_order_id": self.broker_order_id,
            "reason": self.reason,
            "at": self.at.isoformat() if self.at is not None else None,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    """Balances of the broker account.

    Parameters
    ----------
    cash : float
        Cash in the account.
    equity : float
        Cash plus positions at the broker's marks.
    buying_power : float
        What the broker lets the account spend.
    currency : str
        Account currency.
    status : str
        The broker's account status (``ACTIVE`` when trading is allowed).
    """

    cash: float
    equity: float
    buying_power: float
    currency: str = "USD"
    status: str = "ACTIVE"


@dataclass(frozen=True, slots=True)
class CancelConfirmation:
    """The broker's answer to one cancel of a ``cancel_all``.

    Parameters
    ----------
    order_id : str
        Our order id.
    broker_order_id : str
        The broker's order id.
    confirmed : bool
        True when the broker confirmed the order is cancelled (or already done).
    status : str
        The order's status (the kit's name for it) when the wait ended.
    seconds : float
        Time from the cancel request until the broker confirmed (or gave up).
    detail : str
        The broker's message when it refused or did not answer.
    """

    order_id: str
    broker_order_id: str
    confirmed: bool
    status: str
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return field_values(self)


@dataclass(frozen=True, slots=True)
class OrderChange:
    """What :meth:`Broker.replace` changes in an order; ``None`` keeps the order's value.

    Parameters
    ----------
    qty : float, optional
        The new quantity.
    limit_price : float, optional
        The new limit price.
    stop_price : float, optional
        The new stop price.
    """

    qty: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None

    def apply_to(self, request: OrderRequest) -> None:
        """Write the changed values into ``request`` (the order's own)."""
        if self.qty is not None:
            request.qty = float(self.qty)
        if self.limit_price is not None:
            request.limit_price = float(self.limit_price)
        if self.stop_price is not None:
            request.stop_price = float(self.stop_price)


@dataclass(slots=True)
class ReconcileReport:
    """What a broker held when it was read back (on start or after an outage).

    Parameters
    ----------
    adopted : list of Order
        Open broker orders recognised as ours (by client order id) and tracked again.
    foreign : list of str
        Broker order ids of open orders that are not this run's (left alone).
    other_runs : list of str
        Those of them the kit placed for other runs (their client order id says so).
    positions : dict
        Broker positions by symbol (signed quantity).
    """

    adopted: list[Order] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    other_runs: list[str] = field(default_factory=list)
    positions: dict[str, float] = field(default_factory=dict)


class Broker(abc.ABC):
    """What the kit needs from a broker.

    Implementations keep the kit's :class:`~alphaswarm.model.Order` objects up to
    date and report each change once through :meth:`poll_updates`.
    """

    #: Short name of the implementation (``simulated``, ``alpaca_paper``).
    kind: str = ""

    @abc.abstractmethod
    def submit(self, request: OrderRequest, ts: datetime | None = None) -> Order:
        """Send an order; returns it accepted, or rejected with the broker's reason."""

    @abc.abstractmethod
    def cancel(self, order_id: str) -> Order | None:
        """Ask the broker to cancel an open order; ``None`` when unknown or done."""

    def replace(
        self,
        order_id: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> Order:
        """Change an open order's quantity or prices (our order id stays the same)."""
        return self._replace(order_id, OrderChange(qty, limit_price, stop_price))

    @abc.abstractmethod
    def _replace(self, order_id: str, change: OrderChange) -> Order:
        """Apply ``change`` to the open order ``order_id`` (what :meth:`replace` calls)."""

    @abc.abstractmethod
    def cancel_all(self, reason: str = "cancel all") -> list[CancelConfirmation]:
        """Cancel every open order and report the broker's confirmation of each."""

    @abc.abstractmethod
    def open_orders(self) -> list[Order]:
        """Orders that may still fill."""

    @abc.abstractmethod
    def positions(self) -> dict[str, Position]:
        """Positions by symbol."""

    @abc.abstractmethod
    def account(self) -> BrokerAccount:
        """Account balances."""

    @abc.abstractmethod
    def poll_updates(self) -> list[OrderUpdate]:
        """Order changes since the last call, oldest first, each reported once."""

    def broker_order_id(self, order_id: str) -> str:
        """The broker's id of our order ``order_id`` (ours, for the simulated broker)."""
        return order_id

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (nothing to do by default)."""
