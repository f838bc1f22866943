"""A ccxt exchange's sandbox/testnet behind the :class:`~alphaswarm.broker.base.Broker` interface.

``broker: {kind: ccxt_sandbox, exchange: binance}`` (``pip install -e '.[ccxt]'``)
sends a paper session's orders to the exchange's sandbox: ccxt's exchange class with
``set_sandbox_mode(True)`` (an exchange without a sandbox is refused). Orders are
followed over REST (``fetch_order`` of each open order when updates are polled); a
fill is the change of the exchange's cumulative ``filled``, so reading an order twice
never counts a fill twice.

* **Keys** only from environment variables (``CCXT_API_KEY`` / ``CCXT_SECRET`` by
  default, or the names given as ``key_env`` / ``secret_env``); never in ``repr``, a
  log line or an order.
* **Idempotent client order ids**: ``clientOrderId = "aw-" + our order id``; a
  submission without an answer is looked up by it before it is sent again. When the
  exchange stays silent the order is left unconfirmed and the broker refuses new
  orders (fail closed) until an order read succeeds again.
* **Order types**: market and limit. Stops, trailing stops and brackets are refused
  (``unsupported``): sandboxes differ too much in how they take them. ``replace`` is
  not offered (cancel and place a new order).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alphaswarm.broker.base import (
    Broker,
    BrokerAccount,
    BrokerError,
    CancelConfirmation,
    OrderChange,
    OrderUpdate,
    UpdateKind,
)
from alphaswarm.broker.remote_book import RemoteOrderBook
from alphaswarm.extras import import_extra
from alphaswarm.model import Fill, Order, OrderStatus, OrderType

if TYPE_CHECKING:
    from alphaswarm.model import OrderRequest

__all__ = ["CcxtSandboxBroker"]

log = logging.getLogger(__name__)

DEFAULT_KEY_ENV = "CCXT_API_KEY"
DEFAULT_SECRET_ENV = "CCXT_SECRET"
_STATUS = {
    "closed": (OrderStatus.FILLED, ""),
    "canceled": (OrderStatus.CANCELLED, "broker_cancelled"),
    "expired": (OrderStatus.CANCELLED, "expired"),
    "rejected": (OrderStatus.REJECTED, "broker_rejected"),
}


def _ccxt() -> Any:
    return import_extra(("ccxt",), package="ccxt", extra="ccxt", who="broker: 'ccxt_sandbox'",
                        error=BrokerError)  # fmt: skip


class CcxtSandboxBroker(RemoteOrderBook, Broker):
    """Orders to a ccxt exchange's sandbox (testnet), followed over REST.

    Parameters
    ----------
    id_prefix : str
        Prefix of our order ids (a run id); client order ids derive from them.
    exchange : str
        ccxt exchange id (``binance``, ``bybit`` ...): one with a sandbox.
    key_env, secret_env : str
        Names of the environment variables holding the sandbox keys.
    urls : dict, optional
        Overrides of the exchange's API base URLs by ccxt's key (``public``,
        ``private`` ...), for a proxy or a test loopback.
    timeout : float
        Seconds to wait for one REST answer.

    Raises
    ------
    BrokerError
        When a key variable is unset, the exchange is unknown or has no sandbox.
    """

    kind = "ccxt_sandbox"
    _venue = "ccxt sandbox"

    def __init__(
        self,
        id_prefix: str = "",
        *,
        exchange: str = "binance",
        key_env: str = DEFAULT_KEY_ENV,
        secret_env: str = DEFAULT_SECRET_ENV,
        urls: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        ccxt = _ccxt()
        key, secret = os.environ.get(key_env, ""), os.environ.get(secret_env, "")
        missing = [n for n, v in ((key_env, key), (secret_env, secret)) if not v]
        if missing:
            raise BrokerError(
                f"ccxt: no API keys: set the environment variable(s) {', '.join(missing)} "
                "(or name others with broker.key_env / broker.secret_env)"
            )
        cls = getattr(ccxt, str(exchange), None)
        if cls is None or not isinstance(cls, type):
            raise BrokerError(f"broker.exchange: {exchange!r} is not a ccxt exchange")
        self.exchange_id, self.key_env, self.secret_env = str(exchange), key_env, secret_env
        self._errors = ccxt
        self._ex = cls(
            {"apiKey": key, "secret": secret, "timeout": int(timeout * 1000),
             # spot only: no market list of the derivatives testnets is read
             "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}}
        )  # fmt: skip
        if not self._ex.urls.get("test"):
            raise BrokerError(f"ccxt: {exchange} has no sandbox/testnet")
        self._ex.set_sandbox_mode(True)
        api = self._ex.urls.get("api")
        for name, url in (urls or {}).items():
            if not isinstance(api, dict) or name not in api:
                raise BrokerError(f"broker.urls: {exchange} has no API url named {name!r}")
            api[name] = url
        self._init_book(id_prefix)

    def __repr__(self) -> str:
        return (
            f"CcxtSandboxBroker({self.exchange_id}, id_prefix={self._prefix!r}, "
            f"keys from ${self.key_env}/${self.secret_env})"
        )

    # -- REST -------------------------------------------------------------------------
    def _lookup(self, order: Order) -> dict[str, Any] | None:
        cid = self.client_order_id(order.id)
        try:
            return self._ex.fetch_order(None, order.symbol, {"origClientOrderId": cid})
        except self._errors.OrderNotFound:
            return None

    # -- orders -----------------------------------------------------------------------
    def submit(self, request: OrderRequest, ts: datetime | None = None) -> Order:
        """Send a market or limit order to the sandbox.

        Returns it accepted, rejected with the exchange's message (``broker_rejected``)
        or refused before sending (``broker_unavailable``, ``unsupported``).
        """
        now = datetime.now(UTC)
        order = self._new_order(request, ts or now)
        if order.status is OrderStatus.REJECTED:
            return order
        if request.is_bracket or request.type not in (OrderType.MARKET, OrderType.LIMIT):
            kind = "bracket" if request.is_bracket else request.type.value
            return self._refuse(order, "unsupported", f"{kind} orders are not sent to ccxt")
        cid = self.client_order_id(order.id)
        raw = None
        for attempt in range(2):
            try:
                raw = self._lookup(order) if attempt else None
                if raw is None:
                    self.submissions += 1
                    raw = self._ex.create_order(
                        request.symbol, request.type.value, request.side.value, request.qty,
                        request.limit_price, {"clientOrderId": cid},
                    )  # fmt: skip
                break
            except self._errors.AuthenticationError as exc:
                self._fail_closed(f"keys refused: {exc}")
                return self._refuse(order, "broker_auth", f"{self.exchange_id} refused the keys")
            except self._errors.NetworkError as exc:
                log.info("ccxt submit %s: %s (attempt %d)", order.id, exc, attempt + 1)
            except self._errors.ExchangeError as exc:
                return self._refuse(
                    order, "broker_rejected", f"{self.exchange_id} rejected the order: {exc}"
                )
        if raw is None:
            order.reason_code = "broker_unconfirmed"
            order.reason = f"no answer from {self.exchange_id}; unknown at the exchange"
            self._fail_closed(f"order {order.id} unconfirmed")
            return order
        self._apply(order, raw, UpdateKind.ACCEPTED)
        return order

    def _cancel_at_broker(self, order: Order, bid: str) -> Order:
        """Cancel ``order`` at the exchange (the result is read back at once)."""
        try:
            raw = self._ex.cancel_order(bid, order.symbol)
        except self._errors.OrderNotFound:  # done meanwhile: read what it became
            raw = self._ex.fetch_order(bid, order.symbol)
        except self._errors.BaseError as exc:
            raise BrokerError(f"ccxt: cancel {order.id}: {exc}") from None
        self._apply(order, raw)
        return order

    def _replace(self, order_id: str, change: OrderChange) -> Order:
        """Not offered: cancel the order and place a new one."""
        raise BrokerError("replace: not offered for ccxt sandboxes; cancel and place a new order")

    def cancel_all(self, reason: str = "cancel all") -> list[CancelConfirmation]:
        """Cancel every open order, each confirmed by the exchange's answer."""
        out = []
        for order in self.open_orders():
            start = time.perf_counter()
            bid = self.broker_order_id(order.id)
            try:
                self.cancel(order.id)
                detail = ""
            except (BrokerError, self._errors.BaseError) as exc:
                detail = str(exc)
            confirmed = not order.is_open
            out.append(
                CancelConfirmation(
                    order.id,
                    bid,
                    confirmed,
                    order.status.value,
                    time.perf_counter() - start,
                    detail,
                )  # fmt: skip
            )
        return self._fail_unless_confirmed(out)

    # -- state ------------------------------------------------------------------------
    def account(self) -> BrokerAccount:
        """Balances of the quote currency (USDT by default) read from the exchange."""
        raw = self._ex.fetch_balance()
        quote = next(
            (o.request.symbol.split("/")[1] for o in self.orders.values() if "/" in o.symbol),
            "USDT",
        )
        total = float((raw.get("total") or {}).get(quote) or 0.0)
        free = float((raw.get("free") or {}).get(quote) or 0.0)
        return BrokerAccount(cash=total, equity=total, buying_power=free, currency=quote)

    def poll_updates(self) -> list[OrderUpdate]:
        """Read every open order back; the changes since the last call, oldest first."""
        for order in list(self.orders.values()):
            unconfirmed = order.reason_code == "broker_unconfirmed"
            if not order.is_open:
                continue
            try:
                bid = self._broker_ids.get(order.id)
                raw = self._ex.fetch_order(bid, order.symbol) if bid else self._lookup(order)
            except self._errors.BaseError as exc:
                log.warning("ccxt: reading %s back failed: %s", order.id, exc)
                continue
            if raw is None and unconfirmed:
                self._refuse(order, "broker_unconfirmed", "never reached the exchange")
            elif raw is not None:
                self._apply(order, raw)
            if unconfirmed:
                self.available, self.unavailable_reason = True, ""
        out, self._updates = self._updates, []
        return out

    # -- applying the exchange's view ---------------------------------------------------
    def _apply(self, order: Order, raw: dict[str, Any], kind: UpdateKind | None = None) -> None:
        bid = str(raw.get("id") or "")
        if bid:
            self._broker_ids[order.id] = bid
        ms = raw.get("lastUpdateTimestamp") or raw.get("timestamp")
        at = datetime.fromtimestamp(ms / 1000, UTC) if ms else datetime.now(UTC)
        cum = float(raw.get("filled") or 0.0)
        fill = None
        if cum > order.filled_qty + 1e-12:
            fill = self._fill(order, raw, cum, at)
        status, code = _STATUS.get(str(raw.get("status")), (OrderStatus.ACCEPTED, ""))
        if status is OrderStatus.ACCEPTED and cum > 1e-12:
            status, code = OrderStatus.PARTIALLY_FILLED, "partial"
        changed = status is not order.status or fill is not None or kind is not None
        order.status, order.reason_code, order.updated_at = status, code, at
        if status is OrderStatus.REJECTED:
            order.reason = f"rejected by {self.exchange_id}"
        elif status is OrderStatus.CANCELLED:
            order.reason = f"{raw.get('status')} at {self.exchange_id}"
        elif status is OrderStatus.PARTIALLY_FILLED:
            order.reason = f"partially filled {order.filled_qty:g} of {order.qty:g}"
        elif status is OrderStatus.ACCEPTED:
            order.reason = f"working at {self.exchange_id}"
        else:
            order.reason = ""
        if not changed:
            return
        if fill is not None:
            kind = (
                UpdateKind.FILLED if status is OrderStatus.FILLED else UpdateKind.PARTIALLY_FILLED
            )
        elif status is OrderStatus.CANCELLED:
            kind = UpdateKind.EXPIRED if code == "expired" else UpdateKind.CANCELLED
        elif status is OrderStatus.REJECTED:
            kind = UpdateKind.REJECTED
        self._updates.append(
            OrderUpdate(kind or UpdateKind.ACCEPTED, order, fill, bid, order.reason, at)
        )

    def _fill(self, order: Order, raw: dict[str, Any], cum: float, at: datetime) -> Fill:
        qty = cum - order.filled_qty
        avg = float(raw.get("average") or raw.get("price") or 0.0)
        price = (avg * cum - order.avg_fill_price * order.filled_qty) / qty
        order.avg_fill_price, order.filled_qty = avg, cum
        return self._record_fill(order, qty, price, at)
