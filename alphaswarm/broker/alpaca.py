"""Alpaca paper trading behind the :class:`~alphaswarm.broker.base.Broker` interface.

Orders go out through alpaca-py's :class:`alpaca.trading.client.TradingClient`;
order events come back on its ``trade_updates`` stream
(:class:`alpaca.trading.stream.TradingStream`, run on a background thread) and
are applied to the kit's orders when :meth:`AlpacaPaperBroker.poll_updates` is
called, on the caller's thread.

Guarantees
----------
* **Keys** come only from environment variables (``ALPACA_API_KEY`` /
  ``ALPACA_SECRET_KEY`` by default, the same as the Alpaca data feed, or the names
  given as ``key_env``/``secret_env``). They are never part of ``repr``, a log line
  or an order.
* **Idempotent submission.** Every order carries ``client_order_id =
  "aw-" + our order id``. When a submission gets no answer (timeout, dropped
  connection, HTTP 5xx), the order is looked up by that client order id before it
  is sent again, so a retry never places it twice. When the broker stays silent the
  order is left unconfirmed and the broker refuses new orders (fail closed) until
  :meth:`AlpacaPaperBroker.reconcile` reads the account back.
* **One update per change.** Fills are derived from the broker's cumulative
  ``filled_qty``, so an event seen twice (a stream replay, or the stream and a REST
  read of the same order) produces one fill.
* **Restart.** :meth:`AlpacaPaperBroker.reconcile` reads open orders and positions
  back and re-adopts the open orders whose client order id is ours.
* **Market hours.** Orders are refused (``market_closed``) while the calendar says
  the market is closed.

Alpaca order states map onto the kit's lifecycle: ``new``/``accepted``/``pending_*``
/``held``/``done_for_day`` → accepted (or partially filled once a fill arrived),
``partially_filled`` → partially filled, ``filled`` → filled, ``canceled`` →
cancelled (``broker_cancelled``), ``expired`` → cancelled (``expired``),
``rejected`` → rejected (``broker_rejected``, with the broker's message).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
from alphaswarm.broker.remote_book import CLIENT_ID_PREFIX, RemoteOrderBook
from alphaswarm.extras import import_extra
from alphaswarm.live.alpaca import DEFAULT_KEY_ENV, DEFAULT_SECRET_ENV, read_keys
from alphaswarm.live.hours import market_hours
from alphaswarm.model import (
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from alphaswarm.live.hours import MarketHours

__all__ = ["AlpacaPaperBroker", "CLIENT_ID_PREFIX", "kit_status"]

log = logging.getLogger(__name__)

_OPEN_BROKER_STATES = {
    "new", "accepted", "pending_new", "accepted_for_bidding", "partially_filled",
    "pending_cancel", "pending_replace", "held", "calculated", "done_for_day",
    "stopped", "suspended",
}  # fmt: skip
_CLOSED_BROKER_STATES = {"filled": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED,
                         "expired": OrderStatus.CANCELLED, "rejected": OrderStatus.REJECTED,
                         "replaced": OrderStatus.CANCELLED}  # fmt: skip
_REASON_CODES = {"canceled": "broker_cancelled", "expired": "expired",
                 "rejected": "broker_rejected", "replaced": "replaced"}  # fmt: skip
_EVENT_KINDS = {
    "new": UpdateKind.ACCEPTED,
    "accepted": UpdateKind.ACCEPTED,
    "partial_fill": UpdateKind.PARTIALLY_FILLED,
    "fill": UpdateKind.FILLED,
    "canceled": UpdateKind.CANCELLED,
    "expired": UpdateKind.EXPIRED,
    "rejected": UpdateKind.REJECTED,
    "replaced": UpdateKind.REPLACED,
}


def kit_status(broker_status: str, filled_qty: float = 0.0) -> tuple[OrderStatus, str]:
    """The kit's order status and reason code for an Alpaca order status.

    Parameters
    ----------
    broker_status : str
        Alpaca's ``status`` field of an order.
    filled_qty : float
        The order's cumulative filled quantity.

    Returns
    -------
    (OrderStatus, str)
        The status and the reason code (empty for a working order).
    """
    if broker_status in _CLOSED_BROKER_STATES:
        return _CLOSED_BROKER_STATES[broker_status], _REASON_CODES.get(broker_status, "")
    if broker_status == "partially_filled" or filled_qty > 1e-12:
        return OrderStatus.PARTIALLY_FILLED, "partial"
    if broker_status in _OPEN_BROKER_STATES:
        return OrderStatus.ACCEPTED, ""
    raise BrokerError(f"alpaca: unknown order status {broker_status!r}")


def _sdk() -> Any:
    """Import alpaca-py's trading modules (the stream's import of websockets warns)."""
    modules = ("common.exceptions", "trading.client", "trading.enums", "trading.requests",
               "trading.stream")  # fmt: skip
    return import_extra(tuple(f"alpaca.{m}" for m in modules), package="alpaca-py",
                        extra="alpaca", who="broker: 'alpaca_paper'", error=BrokerError,
                        quiet=True)  # fmt: skip


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _float(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


class AlpacaPaperBroker(RemoteOrderBook, Broker):
    """Orders to an Alpaca paper account, fills from its ``trade_updates`` stream.

    Parameters
    ----------
    id_prefix : str
        Prefix of our order ids (a run id); the client order ids derive from them, so
        a restart with the same prefix recognises its own open orders.
    key_env, secret_env : str
        Names of the environment variables holding the API keys.
    urls : dict, optional
        ``{trading, stream}`` base URL overrides (a proxy, the test loopback).
    calendar : str
        Market calendar deciding when orders may go out (``equities``, ``24x7``,
        or an ``exchange_calendars`` name).
    timeout : float
        Seconds to wait for one REST answer.
    retries : int
        Further submission attempts after a submission that got no answer.
    stream : bool
        Start the ``trade_updates`` stream (off: updates come from :meth:`sync_orders`).
    clock : callable, optional
        Returns the current UTC time (for the market-hours check); wall clock by default.

    Raises
    ------
    BrokerError
        When a key variable is unset or empty.
    """

    kind = "alpaca_paper"
    _venue = "alpaca"

    def __init__(
        self,
        id_prefix: str = "",
        *,
        key_env: str = DEFAULT_KEY_ENV,
        secret_env: str = DEFAULT_SECRET_ENV,
        urls: dict[str, str] | None = None,
        calendar: str = "equities",
        timeout: float = 10.0,
        retries: int = 2,
        stream: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        urls = dict(urls or {})
        unknown = set(urls) - {"trading", "stream"}
        if unknown:
            raise BrokerError(
                f"broker.urls: unknown key(s) {sorted(unknown)}; allowed: trading, stream"
            )
        key, secret = read_keys(key_env, secret_env, BrokerError, "broker")
        self.key_env, self.secret_env = key_env, secret_env
        self.urls = urls
        self.hours: MarketHours = market_hours(calendar)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._init_book(id_prefix)  # submissions: POST /v2/orders calls made
        self._by_cid: dict[str, Order] = {}
        self._by_broker_id: dict[str, Order] = {}
        self._superseded: set[str] = set()  # broker ids of orders we replaced
        self._replaces: dict[str, int] = {}  # our order id -> replacements sent
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        sdk = _sdk()
        self._api_error = sdk.common.exceptions.APIError
        self._client = sdk.trading.client.TradingClient(
            key, secret, paper=True, raw_data=True, url_override=urls.get("trading")
        )
        self._client._session.request = _with_timeout(self._client._session.request, self.timeout)
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        if stream:
            self._start_stream(key, secret)

    def __repr__(self) -> str:
        keys = f"${self.key_env}/${self.secret_env}"
        return f"AlpacaPaperBroker(id_prefix={self._prefix!r}, keys from {keys})"

    # -- ids --------------------------------------------------------------------------
    def _ours(self, cid: str) -> str | None:
        """Our order id inside a client order id (``-rN`` marks a replacement), or None."""
        head = f"{CLIENT_ID_PREFIX}{self._prefix}o"
        if not cid.startswith(head):
            return None
        number, _, replaced = cid[len(head) :].partition("-r")
        if number.isdigit() and (not replaced or replaced.isdigit()):
            return f"{self._prefix}o{number}"
        return None

    # -- stream -----------------------------------------------------------------------
    def _start_stream(self, key: str, secret: str) -> None:
        sdk = _sdk()
        url = self.urls.get("stream")
        self._stream = sdk.trading.stream.TradingStream(
            key, secret, paper=True, raw_data=True, url_override=url
        )
        events = self._events

        async def on_update(msg: dict[str, Any]) -> None:
            events.put(msg.get("data") or {})

        self._stream.subscribe_trade_updates(on_update)
        self._thread = threading.Thread(
            target=self._stream.run, name="alpaca-trade-updates", daemon=True
        )
        self._thread.start()
        # orders wait until the stream listens: events from before it would be lost
        deadline = time.monotonic() + self.timeout
        while not self._stream._running and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._stream._running:
            log.warning("alpaca trade_updates stream not connected; orders are read over REST")

    def close(self) -> None:
        """Stop the stream thread."""
        stream, self._stream = self._stream, None
        if stream is not None:
            deadline = time.monotonic() + 5
            while stream._loop is None and time.monotonic() < deadline:
                time.sleep(0.01)
            loop = stream._loop
            if loop is not None and loop.is_running():
                try:
                    # stop, then close the socket so the reader wakes now, not at its timeout
                    asyncio.run_coroutine_threadsafe(stream.stop_ws(), loop).result(5)
                    asyncio.run_coroutine_threadsafe(stream.close(), loop).result(5)
                except (RuntimeError, TimeoutError, concurrent.futures.TimeoutError):
                    pass  # the loop already ended
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._client._session.close()

    # -- REST -------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one REST call; no answer raises :class:`BrokerUnavailable`."""
        try:
            return fn()
        except self._api_error as exc:
            if exc.status_code is not None and exc.status_code >= 500:
                raise BrokerUnavailable(f"alpaca: {what}: HTTP {exc.status_code}") from None
            if exc.status_code == 401:
                raise BrokerAuthError(
                    f"alpaca refused the API keys from ${self.key_env}/${self.secret_env}: "
                    f"{_api_message(exc)}"
                ) from None
            raise
        except OSError as exc:
            raise BrokerUnavailable(f"alpaca: {what}: no answer ({type(exc).__name__})") from None

    def _lookup(self, cid: str) -> dict[str, Any] | None:
        """The broker's order with client order id ``cid``, or None when it has none."""
        try:
            return self._call("order lookup", lambda: self._client.get_order_by_client_id(cid))
        except self._api_error as exc:
            if exc.status_code == 404:
                return None
            raise

    def _lookup_quietly(self, cid: str) -> dict[str, Any] | None:
        try:
            return self._lookup(cid)
        except (BrokerError, self._api_error):
            return None

    def _request_for(self, request: OrderRequest, cid: str) -> Any:
        sdk = _sdk()
        rq, enums = sdk.trading.requests, sdk.trading.enums
        common = {
            "symbol": request.symbol,
            "qty": request.qty,
            "side": enums.OrderSide(request.side.value),
            "time_in_force": enums.TimeInForce(request.time_in_force.value),
            "client_order_id": cid,
        }
        if request.is_bracket:  # exits at Alpaca: both legs a bracket, one an OTO
            both = request.take_profit is not None and request.stop_loss is not None
            common["order_class"] = enums.OrderClass.BRACKET if both else enums.OrderClass.OTO
            if request.take_profit is not None:
                common["take_profit"] = rq.TakeProfitRequest(limit_price=request.take_profit)
            if request.stop_loss is not None:
                common["stop_loss"] = rq.StopLossRequest(stop_price=request.stop_loss)
        kind = request.type
        if kind is OrderType.MARKET:
            return rq.MarketOrderRequest(**common)
        if kind is OrderType.LIMIT:
            return rq.LimitOrderRequest(limit_price=request.limit_price, **common)
        if kind is OrderType.STOP:
            return rq.StopOrderRequest(stop_price=request.stop_price, **common)
        if kind is OrderType.STOP_LIMIT:
            return rq.StopLimitOrderRequest(
                limit_price=request.limit_price, stop_price=request.stop_price, **common
            )
        return rq.TrailingStopOrderRequest(trail_percent=request.trail_pct * 100, **common)

    # -- orders -----------------------------------------------------------------------
    def submit(self, request: OrderRequest, ts: datetime | None = None) -> Order:
        """Send an order to Alpaca.

        Returns the order accepted (``accepted``), rejected with Alpaca's message
        (``broker_rejected``) or refused before sending (``broker_unavailable``,
        ``market_closed``, ``unsupported``). When Alpaca gives no answer after the
        retries, the order stays ``new`` with reason code ``broker_unconfirmed`` and
        the broker refuses further orders until :meth:`reconcile`.
        """
        now = self._clock()
        order = self._new_order(request, ts or now)
        if order.status is OrderStatus.REJECTED:
            return order
        if not self.hours.is_open(now):
            opens = self.hours.next_open(now)
            return self._refuse(
                order,
                "market_closed",
                f"market closed ({self.hours.name}); next open {opens:%Y-%m-%d %H:%M} UTC",
            )
        cid = self.client_order_id(order.id)
        self._by_cid[cid] = order
        payload = self._request_for(request, cid)
        for attempt in range(self.retries + 1):
            found: dict[str, Any] | None = None
            try:
                found = self._lookup(cid) if attempt else None
                if found is None:
                    self.submissions += 1
                    found = self._call("submit", lambda: self._client.submit_order(payload))
            except BrokerAuthError as exc:
                self._fail_closed(str(exc))
                return self._refuse(order, "broker_auth", str(exc))
            except BrokerUnavailable as exc:
                log.info("alpaca submit %s: %s (attempt %d)", order.id, exc, attempt + 1)
                continue
            except self._api_error as exc:
                if attempt and exc.status_code == 422:
                    # a resubmission clashing with our own client id: the first one landed
                    found = self._lookup_quietly(cid)
                if found is None:
                    return self._refuse(
                        order,
                        "broker_rejected",
                        f"alpaca rejected the order: {_api_message(exc)}",
                    )
            self._apply(order, found, None)
            self._adopt_legs(order, found)
            return order
        order.reason_code = "broker_unconfirmed"
        order.reason = (
            f"no answer from alpaca after {self.retries + 1} attempt(s); unknown at the broker"
        )
        self._fail_closed(f"order {order.id} unconfirmed")
        return order

    def _adopt_legs(self, parent: Order, raw: dict[str, Any]) -> None:
        """Track the exit legs Alpaca made for a bracket (or OTO) entry as our orders.

        Each leg becomes an order of ours with ``parent_id`` the entry's id (and the
        entry's id as ``oco_group`` when there are two); Alpaca names the legs, so
        their updates are matched by Alpaca's ids.
        """
        legs = raw.get("legs") or []
        request = parent.request
        for leg in legs:
            if str(leg.get("id", "")) in self._by_broker_id:
                continue
            kind = OrderType(leg.get("order_type") or leg.get("type") or "limit")
            child = OrderRequest(
                request.symbol,
                request.side.opposite,
                _float(leg.get("qty")) or request.qty,
                kind,
                limit_price=_float(leg["limit_price"]) if leg.get("limit_price") else None,
                stop_price=_float(leg["stop_price"]) if leg.get("stop_price") else None,
                time_in_force=TimeInForce(leg.get("time_in_force") or "gtc"),
                tag=("tp" if kind is OrderType.LIMIT else "sl")
                if not request.tag
                else f"{request.tag}:{'tp' if kind is OrderType.LIMIT else 'sl'}",
            )
            at = _utc(leg.get("created_at")) or parent.created_at
            order = Order(
                self._next_order_id(), child, at, parent.placed_index,
                parent_id=parent.id, oco_group=parent.id if len(legs) > 1 else None,
                updated_at=at,
            )  # fmt: skip
            order.history.append(f"exit leg of {parent.id}, placed by alpaca")
            self.orders[order.id] = order
            if leg.get("client_order_id"):
                self._by_cid[leg["client_order_id"]] = order
            self._apply(order, leg, None, kind=UpdateKind.ACCEPTED)  # held: works after the entry

    def _cancel_at_broker(self, order: Order, bid: str) -> Order | None:
        """Ask Alpaca to cancel ``order`` (the confirmation arrives as an update)."""
        try:
            self._call("cancel", lambda: self._client.cancel_order_by_id(bid))
        except self._api_error as exc:
            if exc.status_code == 422:  # no longer cancelable: read what it became
                self.sync_orders([order])
                return None
            raise BrokerError(f"alpaca: cancel {order.id}: {_api_message(exc)}") from None
        return order

    def _replace(self, order_id: str, change: OrderChange) -> Order:
        """Replace an open order at Alpaca; our id now names the replacing broker order."""
        found = self._cancellable(order_id)
        if found is None:
            raise BrokerError(f"replace: {order_id!r} is not an open order")
        order, bid = found
        qty = change.qty
        rq = _sdk().trading.requests
        self._replaces[order_id] = self._replaces.get(order_id, 0) + 1
        cid = f"{self.client_order_id(order_id)}-r{self._replaces[order_id]}"
        fields: dict[str, Any] = {
            "qty": int(qty) if qty is not None and float(qty).is_integer() else qty,
            "limit_price": change.limit_price,
            "stop_price": change.stop_price,
            "client_order_id": cid,
        }
        data = rq.ReplaceOrderRequest(**{k: v for k, v in fields.items() if v is not None})
        try:
            raw = self._call("replace", lambda: self._client.replace_order_by_id(bid, data))
        except self._api_error as exc:
            raise BrokerError(f"alpaca: replace {order_id}: {_api_message(exc)}") from None
        change.apply_to(order.request)
        self._superseded.add(bid)
        self._by_cid[raw["client_order_id"]] = order
        self._apply(order, raw, None, kind=UpdateKind.REPLACED)
        return order

    def cancel_all(
        self, reason: str = "cancel all", timeout: float = 10.0
    ) -> list[CancelConfirmation]:
        """Cancel every open order at Alpaca and wait for each confirmation.

        A confirmation is the order seen in a final state (``canceled``, or
        ``filled`` if it filled first) on the stream or by a REST read. Orders still
        open after ``timeout`` seconds, or every order when Alpaca does not answer,
        are reported unconfirmed and the broker refuses new orders.
        """
        self._drain()
        start = time.perf_counter()
        try:
            answers = self._call("cancel all", self._client.cancel_orders)
        except (BrokerUnavailable, self._api_error) as exc:
            detail = _api_message(exc) if isinstance(exc, self._api_error) else str(exc)
            self._fail_closed(f"cancel all: {detail}")
            spent = time.perf_counter() - start
            return [
                CancelConfirmation(
                    o.id, self.broker_order_id(o.id), False, o.status.value, spent, detail
                )
                for o in self.open_orders()
            ]
        targets: dict[str, tuple[Order | None, str]] = {}
        for answer in answers or []:
            bid = str(answer.get("id", ""))
            order = self._by_broker_id.get(bid)
            body = answer.get("body") or {}
            if order is None and body.get("client_order_id"):
                order = self._by_cid.get(body["client_order_id"])
            status = int(answer.get("status", 0))
            targets[bid] = (
                order,
                "" if status < 400 else f"HTTP {status}: {body.get('message', '')}",
            )
        for order in self.open_orders():  # open here but not in the answer: still confirm
            bid = self.broker_order_id(order.id)
            targets.setdefault(bid, (order, ""))
        results: dict[str, CancelConfirmation] = {}
        deadline = start + timeout
        next_read = start
        while len(results) < len(targets):
            self._drain()
            now = time.perf_counter()
            read = now >= next_read
            for bid, (order, detail) in targets.items():
                if bid in results:
                    continue
                if order is not None and not order.is_open:
                    results[bid] = CancelConfirmation(
                        order.id, bid, True, order.status.value, now - start, detail
                    )
                elif read:
                    raw = self._read(bid)
                    if raw is not None and raw.get("status") not in _OPEN_BROKER_STATES:
                        if order is not None:
                            self._apply(order, raw, None)
                        status = kit_status(raw["status"])[0].value
                        results[bid] = CancelConfirmation(
                            order.id if order is not None else "", bid, True, status,
                            time.perf_counter() - start, detail,
                        )  # fmt: skip
            if read:
                next_read = time.perf_counter() + 0.05
            if time.perf_counter() > deadline:
                break
            time.sleep(0.005)
        spent = time.perf_counter() - start
        out = [
            results.get(bid)
            or CancelConfirmation(
                order.id if order else "",
                bid,
                False,
                order.status.value if order else "unknown",
                spent,
                detail or f"no confirmation within {timeout:g}s",
            )  # fmt: skip
            for bid, (order, detail) in targets.items()
        ]
        return self._fail_unless_confirmed(out)

    def _read(self, bid: str) -> dict[str, Any] | None:
        try:
            return self._call("order read", lambda: self._client.get_order_by_id(bid))
        except (BrokerUnavailable, self._api_error):
            return None

    # -- state ------------------------------------------------------------------------
    def account(self) -> BrokerAccount:
        """The paper account's balances, read from Alpaca."""
        raw = self._call("account", self._client.get_account)
        return BrokerAccount(
            cash=_float(raw.get("cash")),
            equity=_float(raw.get("equity")),
            buying_power=_float(raw.get("buying_power")),
            currency=raw.get("currency") or "USD",
            status=str(raw.get("status", "")),
        )

    def poll_updates(self) -> list[OrderUpdate]:
        """Apply the stream's events received so far; the resulting changes, oldest first."""
        self._drain()
        out, self._updates = self._updates, []
        return out

    def sync_orders(self, orders: list[Order] | None = None) -> None:
        """Read our open orders back over REST (what a dropped stream may have missed)."""
        for order in list(orders if orders is not None else self.open_orders()):
            bid = self._broker_ids.get(order.id)
            raw = self._read(bid) if bid else self._lookup(self.client_order_id(order.id))
            if raw is not None:
                self._apply(order, raw, None)

    def reconcile(self) -> ReconcileReport:
        """Read Alpaca's orders and positions back (on start, or after an outage).

        Our orders (by client order id) are adopted or brought up to date, order ids
        continue after the highest one found, positions are replaced by Alpaca's, and
        the broker accepts orders again.

        Raises
        ------
        BrokerUnavailable
            When Alpaca does not answer (the broker keeps refusing orders).
        """
        rq, enums = _sdk().trading.requests, _sdk().trading.enums
        every = rq.GetOrdersRequest(status=enums.QueryOrderStatus.ALL, limit=500)
        raws = self._call("order list", lambda: self._client.get_orders(every))
        report = ReconcileReport()
        for raw in raws:
            cid = raw.get("client_order_id") or ""
            ours = self._ours(cid)
            is_open = raw.get("status") in _OPEN_BROKER_STATES
            if ours is None:
                if is_open:
                    report.foreign.append(str(raw["id"]))
                    if cid.startswith(CLIENT_ID_PREFIX):
                        report.other_runs.append(str(raw["id"]))
                continue
            self._seq = max(self._seq, int(ours[len(self._prefix) + 1 :]))
            if raw.get("status") == "replaced" or str(raw.get("id")) in self._superseded:
                continue  # a replaced order: its successor carries the order on
            order = self._by_cid.get(cid)
            if order is None:
                if not is_open:
                    continue
                order = _order_from_broker(ours, raw)
                self.orders[order.id] = order
                self._by_cid[cid] = order
                report.adopted.append(order)
            self._apply(order, raw, None, quiet=order in report.adopted)
        for order in self.orders.values():  # unconfirmed orders Alpaca never got
            if order.reason_code == "broker_unconfirmed" and order.id not in self._broker_ids:
                self._refuse(
                    order,
                    "broker_unconfirmed",
                    "never reached the broker (none found on reconcile)",
                )
        positions = self._call("positions", self._client.get_all_positions)
        self._positions = {}
        for raw in positions:
            qty = _float(raw.get("qty"))
            if raw.get("side") == "short" and qty > 0:
                qty = -qty
            self._positions[raw["symbol"]] = Position(
                raw["symbol"], qty, _float(raw.get("avg_entry_price")),
                last_price=_float(raw.get("current_price")),
            )  # fmt: skip
            report.positions[raw["symbol"]] = qty
        self.available, self.unavailable_reason = True, ""
        return report

    # -- applying broker state ----------------------------------------------------------
    def _drain(self) -> None:
        while True:
            try:
                data = self._events.get_nowait()
            except queue.Empty:
                return
            raw = data.get("order") or {}
            order = self._by_cid.get(raw.get("client_order_id") or "")
            if order is None:
                order = self._by_broker_id.get(str(raw.get("id", "")))
            if order is None:
                continue  # not ours
            event = str(data.get("event", ""))
            if str(raw.get("id", "")) in self._superseded:
                continue  # news of an order we replaced: its successor is followed
            price = data.get("price")
            self._apply(
                order, raw, _float(price) if price not in (None, "") else None,
                kind=_EVENT_KINDS.get(event), at=_utc(data.get("timestamp")),
            )  # fmt: skip

    def _apply(
        self,
        order: Order,
        raw: dict[str, Any],
        price: float | None,
        *,
        kind: UpdateKind | None = None,
        at: datetime | None = None,
        quiet: bool = False,
    ) -> None:
        """Bring ``order`` up to the broker's view ``raw``; record what changed."""
        bid = str(raw.get("id", ""))
        if bid and raw.get("status") != "replaced":
            old = self._broker_ids.get(order.id)
            if old and old != bid:
                self._by_broker_id.pop(old, None)
            self._broker_ids[order.id] = bid
            self._by_broker_id[bid] = order
        at = at or _utc(raw.get("updated_at")) or self._clock()
        cum = _float(raw.get("filled_qty"))
        if not quiet and (cum < order.filled_qty - 1e-9 or not order.is_open):
            return  # an older view than ours (a late or replayed event): nothing new
        fill = None
        if cum > order.filled_qty + 1e-9 and not quiet:
            fill = self._fill(order, raw, cum, price, at)
        elif quiet:
            order.filled_qty, order.avg_fill_price = cum, _float(raw.get("filled_avg_price"))
        status, code = kit_status(str(raw.get("status", "")), cum)
        changed = status is not order.status or fill is not None
        if status is OrderStatus.ACCEPTED and order.status is OrderStatus.PARTIALLY_FILLED:
            status, code = order.status, "partial"  # a late "new" never undoes a fill
            changed = fill is not None
        order.status = status
        order.updated_at = at
        order.reason_code = code
        if status is OrderStatus.REJECTED:
            order.reason = "rejected by alpaca after acceptance"
        elif status is OrderStatus.CANCELLED:
            order.reason = f"{raw.get('status')} at alpaca"
        elif status is OrderStatus.PARTIALLY_FILLED:
            order.reason = f"partially filled {order.filled_qty:g} of {order.qty:g}"
        elif status is OrderStatus.ACCEPTED:
            order.reason = "working at alpaca"
        elif status is OrderStatus.FILLED:
            order.reason_code, order.reason = "", ""
        if kind is UpdateKind.REPLACED:
            changed = True
        if not changed or quiet:
            return
        if fill is not None:
            kind = (
                UpdateKind.FILLED if status is OrderStatus.FILLED else UpdateKind.PARTIALLY_FILLED
            )
        elif kind is None or kind in (UpdateKind.PARTIALLY_FILLED, UpdateKind.FILLED):
            kind = _status_kind(status, str(raw.get("status")))
        self._updates.append(OrderUpdate(kind, order, fill, bid, order.reason, at))

    def _fill(self, order: Order, raw: dict[str, Any], cum: float, price: float | None,
              at: datetime) -> Fill:  # fmt: skip
        qty = cum - order.filled_qty
        avg = _float(raw.get("filled_avg_price"))
        if price is None:  # from the change of the broker's average price
            price = (avg * cum - order.avg_fill_price * order.filled_qty) / qty if avg else 0.0
        order.avg_fill_price = avg or (
            (order.avg_fill_price * order.filled_qty + price * qty) / cum
        )
        order.filled_qty = cum
        return self._record_fill(order, qty, price, at)


def _status_kind(status: OrderStatus, broker_status: str) -> UpdateKind:
    if status is OrderStatus.CANCELLED:
        return UpdateKind.EXPIRED if broker_status == "expired" else UpdateKind.CANCELLED
    return {
        OrderStatus.REJECTED: UpdateKind.REJECTED,
        OrderStatus.FILLED: UpdateKind.FILLED,
        OrderStatus.PARTIALLY_FILLED: UpdateKind.PARTIALLY_FILLED,
    }.get(status, UpdateKind.ACCEPTED)


def _order_from_broker(order_id: str, raw: dict[str, Any]) -> Order:
    """Rebuild one of our orders from Alpaca's record of it (on restart)."""
    kind = OrderType(raw.get("order_type") or raw.get("type") or "market")
    trail = raw.get("trail_percent")
    request = OrderRequest(
        raw["symbol"],
        Side(raw["side"]),
        _float(raw.get("qty")),
        kind,
        limit_price=_float(raw["limit_price"]) if raw.get("limit_price") else None,
        stop_price=_float(raw["stop_price"]) if raw.get("stop_price") else None,
        trail_pct=_float(trail) / 100 if trail else None,
        time_in_force=TimeInForce(raw.get("time_in_force", "day")),
    )
    created = _utc(raw.get("created_at")) or datetime.now(UTC)
    order = Order(order_id, request, created, 0, updated_at=created)
    order.history.append("read back from alpaca on reconcile")
    return order


def _api_message(exc: Any) -> str:
    """Alpaca's error message (the ``message`` of its JSON error body)."""
    try:
        message = exc.message
    except Exception:  # noqa: BLE001 - a body that is not JSON
        message = str(exc)
    return f"{message} (HTTP {exc.status_code})"


def _with_timeout(request: Callable[..., Any], timeout: float) -> Callable[..., Any]:
    """``requests.Session.request`` with a default timeout (alpaca-py sets none)."""

    def call(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return request(method, url, **kwargs)

    return call
