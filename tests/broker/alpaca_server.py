"""A loopback Alpaca paper-trading server (Tornado on 127.0.0.1, a free port).

It speaks the subset of the Trading API v2 that alpaca-py's ``TradingClient`` uses
for orders (``POST/GET/DELETE/PATCH /v2/orders``, ``GET
/v2/orders:by_client_order_id``, ``GET /v2/positions``, ``GET /v2/account``) and
the ``trade_updates`` WebSocket protocol of ``TradingStream`` (``authenticate``,
``listen``; events ``new``, ``partial_fill``, ``fill``, ``canceled``, ``expired``,
``rejected``, ``replaced``, sent as binary frames like the paper endpoint does).
Records are built from the recorded-looking fixtures in
``tests/fixtures/alpaca_trading``.

Tests drive it from their own thread: :meth:`AlpacaTradingServer.fill`,
:meth:`reject`, :meth:`expire`, :meth:`drop_streams`, and the fault switches
``drop_after_accept`` (record an order, then cut the connection without an
answer), ``drop_before_accept``, ``refuse_orders`` (HTTP 403 with a message),
``cancel_delay`` and ``hang_cancels``. Bracket and OTO entries
(``order_class`` with ``take_profit``/``stop_loss``) get exit legs in ``legs``,
``held`` until the entry fills; a filled leg cancels its sibling.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket

from tests.broker.loopback_http import LoopbackServer

FIXTURES = Path(__file__).parent.parent / "fixtures" / "alpaca_trading"
API_KEY = "PKTEST0000000000000"
SECRET_KEY = "sk-test-secret-0000000000000000000000"
OPEN_STATES = {"new", "accepted", "pending_new", "partially_filled", "pending_cancel", "held"}


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _num(value: float) -> str:
    return f"{value:g}"


class _Base(tornado.web.RequestHandler):
    server: AlpacaTradingServer

    def initialize(self, server: AlpacaTradingServer) -> None:
        self.server = server

    def prepare(self) -> None:
        self.server.hits[f"{self.request.method} {self.request.path}"] += 1
        headers = self.request.headers
        if (headers.get("APCA-API-KEY-ID"), headers.get("APCA-API-SECRET-KEY")) != (
            API_KEY,
            SECRET_KEY,
        ):
            self.error(401, 40110000, "request is not authorized")

    def error(self, status: int, code: int, message: str) -> None:
        self.set_status(status)
        self.finish({"code": code, "message": message})

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def cut(self) -> None:
        """Close the connection without an answer (a dropped request)."""
        self.request.connection.stream.close()
        self._finished = True


class OrdersHandler(_Base):
    def post(self) -> None:
        srv = self.server
        body = json.loads(self.request.body or b"{}")
        if srv.drop_before_accept > 0:
            srv.drop_before_accept -= 1
            return self.cut()
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if cid in srv.by_cid:
            return self.error(422, 40010001, "client_order_id must be unique")
        if body.get("symbol") in srv.refuse_orders:
            status, code, message = srv.refuse_orders[body["symbol"]]
            return self.error(status, code, message)
        try:
            qty = float(body["qty"])
        except (KeyError, TypeError, ValueError):
            return self.error(422, 40010001, "qty is required")
        order = srv.new_order(body, cid, qty)
        price = srv.auto_fill.get(body["symbol"])
        if callable(price):  # the price chosen per order (a planted slippage)
            price = price(order)
        if price is not None and body.get("type") == "market":
            srv._loop.call_soon(srv._fill, order["id"], qty, price)
        if srv.drop_after_accept > 0:
            srv.drop_after_accept -= 1
            return self.cut()
        self.reply(order)

    def get(self) -> None:
        status = self.get_query_argument("status", "open")
        limit = int(self.get_query_argument("limit", "50"))
        orders = list(self.server.orders.values())
        if status == "open":
            orders = [o for o in orders if o["status"] in OPEN_STATES]
        elif status == "closed":
            orders = [o for o in orders if o["status"] not in OPEN_STATES]
        orders.reverse()  # newest first, Alpaca's default direction
        self.reply(orders[:limit])

    async def delete(self) -> None:
        srv = self.server
        if srv.hang_cancels:
            return self.cut()
        answers = []
        for order in list(srv.orders.values()):
            if order["status"] in OPEN_STATES:
                srv.request_cancel(order)
                answers.append({"id": order["id"], "status": 200, "body": order})
        self.reply(answers, status=207)


class OrderByClientIdHandler(_Base):
    def get(self) -> None:
        cid = self.get_query_argument("client_order_id", "")
        order = self.server.by_cid.get(cid)
        if self.server.lookup_misses > 0:
            self.server.lookup_misses -= 1
            order = None
        if order is None:
            return self.error(404, 40410000, f"order not found for {cid}")
        self.reply(order)


class OrderHandler(_Base):
    def get(self, order_id: str) -> None:
        order = self.server.orders.get(order_id)
        if order is None:
            return self.error(404, 40410000, f"order not found for {order_id}")
        self.reply(order)

    def delete(self, order_id: str) -> None:
        srv = self.server
        order = srv.orders.get(order_id)
        if order is None:
            return self.error(404, 40410000, f"order not found for {order_id}")
        if srv.hang_cancels:
            return self.cut()
        if order["status"] not in OPEN_STATES:
            return self.error(422, 42210000, "order is not cancelable")
        srv.request_cancel(order)
        self.set_status(204)
        self.finish()

    def patch(self, order_id: str) -> None:
        srv = self.server
        old = srv.orders.get(order_id)
        if old is None:
            return self.error(404, 40410000, f"order not found for {order_id}")
        if old["status"] not in OPEN_STATES:
            return self.error(422, 42210000, "order is not replaceable")
        body = json.loads(self.request.body or b"{}")
        fields = {
            "symbol": old["symbol"], "side": old["side"], "type": old["type"],
            "time_in_force": body.get("time_in_force", old["time_in_force"]),
            "limit_price": body.get("limit_price", old["limit_price"]),
            "stop_price": body.get("stop_price", old["stop_price"]),
        }  # fmt: skip
        cid = body.get("client_order_id") or f"{old['client_order_id']}-r{srv.hits['PATCH']}"
        srv.hits["PATCH"] += 1
        new = srv.new_order(fields, cid, float(body.get("qty", old["qty"])), announce=False)
        new["replaces"] = old["id"]
        old.update(status="replaced", replaced_by=new["id"], replaced_at=_now(), updated_at=_now())
        srv.publish("replaced", old)
        srv.publish("new", new)
        self.reply(new)


class PositionsHandler(_Base):
    def get(self) -> None:
        self.reply([p for p in self.server.positions.values() if float(p["qty"]) != 0])


class AccountHandler(_Base):
    def get(self) -> None:
        account = copy.deepcopy(self.server.account)
        self.reply(account)


class StreamHandler(tornado.websocket.WebSocketHandler):
    def initialize(self, server: AlpacaTradingServer) -> None:
        self.server = server
        self.authorized = False

    def open(self) -> None:
        self.server.connections += 1

    def on_message(self, message: str | bytes) -> None:
        msg = json.loads(message)
        action, data = msg.get("action"), msg.get("data") or {}
        srv = self.server
        if action == "authenticate":
            ok = (data.get("key_id"), data.get("secret_key")) == (API_KEY, SECRET_KEY)
            self.authorized = ok
            status = "authorized" if ok else "unauthorized"
            self.send({"stream": "authorization", "data": {"status": status, "action": action}})
            if not ok:
                self.close()
        elif action == "listen" and self.authorized:
            streams = [s for s in data.get("streams", []) if s == "trade_updates"]
            if streams:
                srv.listeners.add(self)
            else:
                srv.listeners.discard(self)
            srv.listens += 1
            self.send({"stream": "listening", "data": {"streams": streams}})

    def send(self, payload: dict[str, Any]) -> None:
        self.write_message(json.dumps(payload).encode(), binary=True)

    def on_close(self) -> None:
        self.server.listeners.discard(self)


class AlpacaTradingServer(LoopbackServer):
    """The loopback server; state lives on its own event loop thread."""

    def __init__(self, cash: float = 100_000.0) -> None:
        super().__init__()
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_cid: dict[str, dict[str, Any]] = {}
        self.parent_of: dict[str, str] = {}  # exit leg id -> its entry's id
        self.positions: dict[str, dict[str, Any]] = {}
        self.account = load("account.json")
        self.account.update(cash=_num(cash), equity=_num(cash), buying_power=_num(2 * cash))
        self.hits: Counter[str] = Counter()
        self.listeners: set[StreamHandler] = set()
        self.connections = 0
        self.listens = 0
        self.sent: list[dict[str, Any]] = []
        self.drop_after_accept = 0
        self.drop_before_accept = 0
        self.lookup_misses = 0  # lookups by client order id answering 404 (a lagging replica)
        self.refuse_orders: dict[str, tuple[int, int, str]] = {}
        self.cancel_delay = 0.0
        self.hang_cancels = False
        self.streaming = True  # False: events are lost (a stream outage)
        # symbol -> price market orders fill at (or a callable of the order giving it)
        self.auto_fill: dict[str, Any] = {}

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    @property
    def urls(self) -> dict[str, str]:
        return {"trading": self.http, "stream": self.ws}

    def routes(self) -> list[tuple[str, type[tornado.web.RequestHandler]]]:
        return [
            (r"/v2/orders", OrdersHandler),
            (r"/v2/orders:by_client_order_id", OrderByClientIdHandler),
            (r"/v2/orders/([0-9a-f-]+)", OrderHandler),
            (r"/v2/positions", PositionsHandler),
            (r"/v2/account", AccountHandler),
            (r"/stream", StreamHandler),
        ]

    def _closing(self) -> None:
        for ws in list(self.listeners):
            ws.close()

    # -- state (server loop only) ----------------------------------------------------------
    def new_order(self, body: dict[str, Any], cid: str, qty: float, announce: bool = True) -> dict:
        order = load("order_template.json")
        now = _now()
        kind = body.get("type", "market")
        order.update(
            id=str(uuid.uuid4()), client_order_id=cid, created_at=now, updated_at=now,
            submitted_at=now, symbol=body["symbol"], qty=_num(qty), side=body["side"],
            type=kind, order_type=kind, time_in_force=body.get("time_in_force", "day"),
            limit_price=_str(body.get("limit_price")), stop_price=_str(body.get("stop_price")),
            trail_percent=_str(body.get("trail_percent")), status="accepted",
            position_intent="buy_to_open" if body["side"] == "buy" else "sell_to_close",
        )  # fmt: skip
        self.orders[order["id"]] = order
        self.by_cid[cid] = order
        if body.get("order_class") in ("bracket", "oto"):
            order["order_class"] = body["order_class"]
            order["legs"] = self._legs(order, body)
        if announce:
            order["status"] = "new"
            self.publish("new", order)
            order = copy.deepcopy(order)
            order["status"] = "accepted"  # the POST answer predates routing
        return order

    def _legs(self, parent: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
        """The exit legs of a bracket/OTO entry: held until the entry fills."""
        legs = []
        exits = (
            ("take_profit", "limit", "limit_price"),
            ("stop_loss", "stop", "stop_price"),
        )
        for key, kind, price_key in exits:
            prices = body.get(key)
            if not prices:
                continue
            leg = load("order_template.json")
            now = _now()
            leg.update(
                id=str(uuid.uuid4()), client_order_id=str(uuid.uuid4()), created_at=now,
                updated_at=now, submitted_at=now, symbol=parent["symbol"], qty=parent["qty"],
                side="sell" if parent["side"] == "buy" else "buy", type=kind, order_type=kind,
                time_in_force="gtc", status="held", order_class=parent["order_class"],
                position_intent="sell_to_close" if parent["side"] == "buy" else "buy_to_close",
                expires_at=None,
            )  # fmt: skip
            leg[price_key] = _str(prices[price_key])
            self.orders[leg["id"]] = leg
            self.by_cid[leg["client_order_id"]] = leg
            self.parent_of[leg["id"]] = parent["id"]
            legs.append(leg)
        return legs

    def _after_fill(self, order: dict[str, Any]) -> None:
        """A filled entry activates its legs; a filled leg cancels its sibling."""
        for leg in order.get("legs") or []:
            if leg["status"] == "held":
                leg.update(status="new", updated_at=_now())
                self.publish("new", leg)
        parent = self.orders.get(self.parent_of.get(order["id"], ""))
        for sibling in (parent or {}).get("legs") or []:
            if sibling is not order and sibling["status"] in OPEN_STATES:
                sibling.update(status="canceled", canceled_at=_now(), updated_at=_now())
                self.publish("canceled", sibling)

    def leg_cid(self, parent_cid: str, index: int) -> str:
        """Client order id Alpaca gave the ``index``-th exit leg of an entry."""
        return self.call(lambda: self.by_cid[parent_cid]["legs"][index]["client_order_id"])

    def publish(self, event: str, order: dict[str, Any], **extra: Any) -> None:
        payload = {
            "stream": "trade_updates",
            "data": {"event": event, "timestamp": _now(), "order": copy.deepcopy(order), **extra},
        }
        self.sent.append(payload)
        if not self.streaming:
            return
        for ws in list(self.listeners):
            ws.send(payload)

    def request_cancel(self, order: dict[str, Any]) -> None:
        def done() -> None:
            if order["status"] in OPEN_STATES:
                order.update(status="canceled", canceled_at=_now(), updated_at=_now())
                self.publish("canceled", order)

        if self.cancel_delay:
            order.update(status="pending_cancel", updated_at=_now())
            self._loop.call_later(self.cancel_delay, done)
        else:
            done()

    def _fill(self, order_id: str, qty: float, price: float) -> None:
        order = self.orders[order_id]
        filled = float(order["filled_qty"])
        avg = float(order["filled_avg_price"] or 0)
        total = filled + qty
        order["filled_avg_price"] = _num(round((avg * filled + price * qty) / total, 6))
        order["filled_qty"] = _num(total)
        now = _now()
        done = total >= float(order["qty"]) - 1e-9
        order.update(status="filled" if done else "partially_filled", updated_at=now)
        if done:
            order["filled_at"] = now
        sign = 1 if order["side"] == "buy" else -1
        pos = self.positions.get(order["symbol"])
        if pos is None:
            pos = load("position_template.json")
            pos.update(symbol=order["symbol"], qty="0", avg_entry_price="0")
            self.positions[order["symbol"]] = pos
        held = float(pos["qty"])
        new_qty = held + sign * qty
        if held == 0 or (held > 0) == (sign > 0):
            entry = (float(pos["avg_entry_price"]) * abs(held) + price * qty) / abs(new_qty)
            pos["avg_entry_price"] = _num(round(entry, 6))
        pos.update(
            qty=_num(new_qty), qty_available=_num(new_qty), current_price=_num(price),
            side="long" if new_qty >= 0 else "short",
            market_value=_num(round(new_qty * price, 4)),
        )  # fmt: skip
        cash = float(self.account["cash"]) - sign * qty * price
        self.account.update(cash=_num(round(cash, 4)))
        self.publish(
            "fill" if done else "partial_fill", order, execution_id=str(uuid.uuid4()),
            price=_num(price), qty=_num(qty), position_qty=_num(new_qty),
        )  # fmt: skip
        if done:
            self._after_fill(order)

    # -- test controls (any thread) ------------------------------------------------------------
    def order_by_cid(self, cid: str) -> dict[str, Any]:
        return self.call(lambda: copy.deepcopy(self.by_cid[cid]))

    def fill(self, cid: str, qty: float, price: float) -> None:
        """Execute ``qty`` of the order with client order id ``cid`` at ``price``."""
        self.call(lambda: self._fill(self.by_cid[cid]["id"], qty, price))

    def reject(self, cid: str) -> None:
        """Reject an accepted order after the fact (a ``rejected`` event)."""

        def run() -> None:
            order = self.by_cid[cid]
            order.update(status="rejected", failed_at=_now(), updated_at=_now())
            self.publish("rejected", order)

        self.call(run)

    def expire(self, cid: str) -> None:
        """Expire a working order (end of its day)."""

        def run() -> None:
            order = self.by_cid[cid]
            order.update(status="expired", expired_at=_now(), updated_at=_now())
            self.publish("expired", order)

        self.call(run)

    def replay_last(self, back: int = 1) -> None:
        """Send the ``back``-th last event again (a duplicate, late delivery)."""

        def run() -> None:
            for ws in list(self.listeners):
                ws.send(self.sent[-back])

        self.call(run)

    def drop_streams(self) -> None:
        """Close every stream connection (the client reconnects)."""

        def run() -> None:
            for ws in list(self.listeners):
                ws.close()
            self.listeners.clear()

        self.call(run)

    def listening(self) -> int:
        return self.call(lambda: len(self.listeners))

    def open_count(self) -> int:
        return self.call(lambda: sum(o["status"] in OPEN_STATES for o in self.orders.values()))

    def seed_position(self, symbol: str, qty: float, price: float) -> None:
        def run() -> None:
            pos = load("position_template.json")
            pos.update(symbol=symbol, qty=_num(qty), qty_available=_num(qty),
                       avg_entry_price=_num(price), current_price=_num(price))  # fmt: skip
            self.positions[symbol] = pos

        self.call(run)

    def age(self, seconds: float) -> None:
        """Move every order's timestamps back (records that look older)."""

        def run() -> None:
            for order in self.orders.values():
                ts = datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
                order["created_at"] = (ts - timedelta(seconds=seconds)).isoformat()

        self.call(run)


def _str(value: Any) -> str | None:
    return None if value is None else _num(float(value))
