"""A loopback Binance spot testnet (Tornado on 127.0.0.1, a free port), for ccxt.

It answers the subset of Binance's spot REST API v3 that ccxt's ``binance`` class
uses in sandbox mode for orders: ``GET /api/v3/exchangeInfo`` (one market,
``BTC/USDT``), ``POST/GET/DELETE /api/v3/order``, ``GET /api/v3/openOrders``,
``GET /api/v3/account``. Signed requests must carry the test key in ``X-MBX-APIKEY``
and a ``signature``. Orders rest (``NEW``) until the test fills or rejects them;
``market_price`` fills market orders at once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from tests.broker.loopback_http import LoopbackServer

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ccxt_sandbox"
API_KEY = "binance-testnet-key-0000"
SECRET = "binance-testnet-secret-0000"


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Base(tornado.web.RequestHandler):
    server: BinanceTestnet

    def initialize(self, server: BinanceTestnet) -> None:
        self.server = server

    def prepare(self) -> None:
        self.server.hits[f"{self.request.method} {self.request.path}"] += 1

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json;charset=UTF-8")
        self.finish(json.dumps(body))

    def error(self, status: int, code: int, msg: str) -> None:
        self.reply({"code": code, "msg": msg}, status)

    def params(self) -> dict[str, str]:
        args = {k: v[-1].decode() for k, v in self.request.query_arguments.items()}
        args.update({k: v[-1].decode() for k, v in self.request.body_arguments.items()})
        return args

    def signed(self) -> dict[str, str] | None:
        args = self.params()
        if self.request.headers.get("X-MBX-APIKEY") != API_KEY:
            self.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            return None
        if "signature" not in args or "timestamp" not in args:
            self.error(400, -1102, "Mandatory parameter 'signature' was not sent.")
            return None
        return args


class ExchangeInfo(_Base):
    def get(self) -> None:
        info = json.loads((FIXTURES / "exchange_info.json").read_text())
        info["serverTime"] = _now_ms()
        self.reply(info)


class OrderHandler(_Base):
    def post(self) -> None:
        args = self.signed()
        if args is None:
            return
        srv = self.server
        if srv.reject_reason:
            return self.error(400, -2010, srv.reject_reason)
        cid = args.get("newClientOrderId") or f"x-{len(srv.orders)}"
        if any(o["clientOrderId"] == cid for o in srv.orders.values()):
            return self.error(400, -2010, "Duplicate order sent.")
        srv.seq += 1
        order = {
            "symbol": args["symbol"], "orderId": srv.seq, "orderListId": -1,
            "clientOrderId": cid, "transactTime": _now_ms(), "price": args.get("price", "0"),
            "origQty": args["quantity"], "executedQty": "0", "cummulativeQuoteQty": "0",
            "status": "NEW", "timeInForce": args.get("timeInForce", "GTC"),
            "type": args["type"], "side": args["side"], "workingTime": _now_ms(),
            "selfTradePreventionMode": "EXPIRE_MAKER", "fills": [],
            "stopPrice": args.get("stopPrice", "0"), "time": _now_ms(), "updateTime": _now_ms(),
            "isWorking": True, "origQuoteOrderQty": "0",
        }  # fmt: skip
        srv.orders[srv.seq] = order
        if args["type"] == "MARKET" and srv.market_price is not None:
            srv.execute(order, float(args["quantity"]), srv.market_price)
        self.reply(order)

    def get(self) -> None:
        args = self.signed()
        if args is None:
            return
        order = self.server.find(args)
        if order is None:
            return self.error(400, -2013, "Order does not exist.")
        self.reply(order)

    def delete(self) -> None:
        args = self.signed()
        if args is None:
            return
        order = self.server.find(args)
        if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return self.error(400, -2011, "Unknown order sent.")
        order.update(status="CANCELED", updateTime=_now_ms(), isWorking=False)
        self.reply(order)


class OpenOrders(_Base):
    def get(self) -> None:
        if self.signed() is None:
            return
        self.reply(
            [o for o in self.server.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")]
        )


class Account(_Base):
    def get(self) -> None:
        if self.signed() is None:
            return
        self.reply(
            {
                "makerCommission": 0, "takerCommission": 0, "canTrade": True,
                "canWithdraw": False, "canDeposit": False, "updateTime": _now_ms(),
                "accountType": "SPOT", "permissions": ["SPOT"],
                "balances": [
                    {"asset": a, "free": f"{v:.8f}", "locked": "0.00000000"}
                    for a, v in self.server.balances.items()
                ],
            }
        )  # fmt: skip


class BinanceTestnet(LoopbackServer):
    """The loopback exchange; its state lives on its own event loop thread."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[int, dict[str, Any]] = {}
        self.balances = {"USDT": 10_000.0, "BTC": 0.0}
        self.hits: Counter[str] = Counter()
        self.seq = 0
        self.market_price: float | None = None
        self.reject_reason = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    def routes(self) -> list[tuple[str, type[tornado.web.RequestHandler]]]:
        return [
            (r"/api/v3/exchangeInfo", ExchangeInfo),
            (r"/api/v3/order", OrderHandler),
            (r"/api/v3/openOrders", OpenOrders),
            (r"/api/v3/account", Account),
        ]

    # -- server loop only ------------------------------------------------------------------
    def find(self, args: dict[str, str]) -> dict[str, Any] | None:
        if "orderId" in args:
            return self.orders.get(int(args["orderId"]))
        cid = args.get("origClientOrderId")
        return next((o for o in self.orders.values() if o["clientOrderId"] == cid), None)

    def execute(self, order: dict[str, Any], qty: float, price: float) -> None:
        done = float(order["executedQty"]) + qty
        quote = float(order["cummulativeQuoteQty"]) + qty * price
        full = done >= float(order["origQty"]) - 1e-12
        order.update(
            executedQty=f"{done:.8f}", cummulativeQuoteQty=f"{quote:.8f}",
            status="FILLED" if full else "PARTIALLY_FILLED", updateTime=_now_ms(),
            isWorking=not full,
        )  # fmt: skip
        order["fills"].append(
            {"price": f"{price:.8f}", "qty": f"{qty:.8f}", "commission": "0",
             "commissionAsset": "BTC", "tradeId": self.seq * 100 + len(order["fills"])}
        )  # fmt: skip
        sign = 1 if order["side"] == "BUY" else -1
        self.balances["BTC"] += sign * qty
        self.balances["USDT"] -= sign * qty * price

    # -- test controls (any thread) ---------------------------------------------------------
    def fill(self, cid: str, qty: float, price: float) -> None:
        self.call(lambda: self.execute(self.find({"origClientOrderId": cid}), qty, price))

    def open_count(self) -> int:
        return self.call(
            lambda: sum(o["status"] in ("NEW", "PARTIALLY_FILLED") for o in self.orders.values())
        )
