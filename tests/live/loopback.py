"""Loopback servers (127.0.0.1, a free port) speaking Alpaca's and Binance's wire protocols.

They play the recorded message fixtures of ``tests/fixtures``: the SDKs under test
(alpaca-py, ccxt) are pointed at them through their own URL overrides. Every
request is counted in ``hits`` so a test can tell a cache hit from a download.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import msgpack
from aiohttp import WSMsgType, web

FIXTURES = Path(__file__).parent.parent / "fixtures"

API_KEY = "PKTEST0000000000000"
SECRET_KEY = "sk-test-secret-0000000000000000000000"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


class Loopback:
    """An aiohttp app on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.hits: Counter[str] = Counter()
        self.connections = 0
        self.received: list = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._sockets: set = set()
        self.port = 0

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Loopback:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def _stop():
            for ws in list(self._sockets):
                await ws.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def play(self, ws: web.WebSocketResponse, steps: list, encode) -> None:
        for step in steps:
            if "sleep" in step:
                await asyncio.sleep(step["sleep"])
            elif "raw" in step:
                await ws.send_bytes(step["raw"].encode())
            elif step.get("disconnect"):
                await ws.close()
                return
            else:
                await encode(ws, step["send"])
            await asyncio.sleep(0.002)


# -- Alpaca ------------------------------------------------------------------------------------


def _msgpack_ts(msgs: list) -> list:
    """Alpaca's msgpack frames carry ``t`` as a msgpack Timestamp."""
    out = []
    for msg in msgs:
        msg = dict(msg)
        if isinstance(msg.get("t"), str):
            try:
                dt = datetime.fromisoformat(msg["t"].replace("Z", "+00:00"))
                msg["t"] = msgpack.Timestamp.from_unix(dt.timestamp())
            except ValueError:
                pass
        out.append(msg)
    return out


class AlpacaServer(Loopback):
    """Market data stream v2 (msgpack), ``/v2/stocks/bars`` (paginated) and ``/v2/assets``."""

    page_size = 7

    def __init__(self, script: dict | None = None) -> None:
        super().__init__()
        self.script = script or load("alpaca/stream_session.json")
        self.bars = load("alpaca/rest_bars.json")
        self.assets = load("alpaca/assets.json")
        self.app.router.add_get("/v2/iex", self.stream)
        self.app.router.add_get("/v2/stocks/bars", self.rest_bars)
        self.app.router.add_get("/v2/assets", self.rest_assets)

    def urls(self) -> dict:
        return {"stream": f"{self.ws}/v2/iex", "data": self.http, "trading": self.http}

    @staticmethod
    def _authorised(request: web.Request) -> bool:
        return (
            request.headers.get("APCA-API-KEY-ID") == API_KEY
            and request.headers.get("APCA-API-SECRET-KEY") == SECRET_KEY
        )

    async def rest_assets(self, request: web.Request) -> web.Response:
        self.hits["assets"] += 1
        if not self._authorised(request):
            return web.json_response(
                {"code": 40110000, "message": "request is not authorized"}, status=401
            )
        return web.json_response(self.assets)

    async def rest_bars(self, request: web.Request) -> web.Response:
        self.hits["bars"] += 1
        if not self._authorised(request):
            return web.json_response({"message": "forbidden."}, status=403)
        q = request.query
        symbols = q["symbols"].split(",")
        start = datetime.fromisoformat(q["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(q["end"].replace("Z", "+00:00"))
        rows = [
            (s, b)
            for s in symbols
            for b in self.bars.get(s, [])
            if start <= datetime.fromisoformat(b["t"].replace("Z", "+00:00")) <= end
        ]
        offset = int(base64.b64decode(q["page_token"]).decode()) if q.get("page_token") else 0
        size = min(self.page_size, int(q.get("limit") or self.page_size))
        page = rows[offset : offset + size]
        token = None
        if offset + size < len(rows):
            token = base64.b64encode(str(offset + size).encode()).decode()
        bars: dict = {}
        for s, b in page:
            bars.setdefault(s, []).append(b)
        return web.json_response({"bars": bars, "next_page_token": token})

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        index = self.connections
        self.connections += 1

        async def send(ws, msgs):
            await ws.send_bytes(msgpack.packb(_msgpack_ts(msgs), use_bin_type=True))

        try:
            await send(ws, [{"T": "success", "msg": "connected"}])
            auth = msgpack.unpackb((await ws.receive()).data)
            self.received.append({k: v for k, v in auth.items() if k == "action"})
            if auth.get("key") != API_KEY or auth.get("secret") != SECRET_KEY:
                await send(ws, [{"T": "error", "code": 402, "msg": "auth failed"}])
                await ws.close()
                return ws
            await send(ws, [{"T": "success", "msg": "authenticated"}])
            sub = msgpack.unpackb((await ws.receive()).data)
            self.received.append(sub)
            await send(
                ws,
                [{"T": "subscription", "trades": [], "quotes": [], "bars": sub.get("bars", [])}],
            )
            connections = self.script["connections"]
            if index < len(connections):
                await self.play(ws, connections[index], send)
            async for msg in ws:  # idle until the client leaves
                if msg.type == WSMsgType.CLOSE:
                    break
        finally:
            self._sockets.discard(ws)
        return ws


# -- Binance -----------------------------------------------------------------------------------


class BinanceServer(Loopback):
    """``/api/v3/exchangeInfo``, ``/api/v3/klines`` and the spot websocket stream."""

    page_cap = 10

    def __init__(self, script: dict | None = None) -> None:
        super().__init__()
        self.script = script or load("binance/stream_klines.json")
        #: Refuse (HTTP 503) the first ``refuse`` websocket connection attempts.
        self.refuse = 0
        self.ws_attempts = 0
        self.exchange_info = load("binance/exchange_info.json")
        self.klines = load("binance/klines.json")
        self.app.router.add_get("/api/v3/exchangeInfo", self.rest_info)
        self.app.router.add_get("/api/v3/klines", self.rest_klines)
        self.app.router.add_get("/stream/ws/{n}", self.stream)

    def config(self) -> dict:
        return {
            "urls": {
                "api": {"public": f"{self.http}/api/v3", "ws": {"spot": f"{self.ws}/stream/ws"}}
            },
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
        }

    async def rest_info(self, request: web.Request) -> web.Response:
        self.hits["exchangeInfo"] += 1
        return web.json_response(self.exchange_info)

    async def rest_klines(self, request: web.Request) -> web.Response:
        self.hits["klines"] += 1
        q = request.query
        start = int(q.get("startTime", 0))
        end = int(q["endTime"]) if "endTime" in q else None
        limit = min(int(q.get("limit", 500)), self.page_cap)
        rows = [r for r in self.klines if r[0] >= start and (end is None or r[0] <= end)]
        return web.json_response(rows[:limit])

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.ws_attempts += 1
        if self.ws_attempts <= self.refuse:
            return web.Response(status=503, text="refused by the loopback server")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        index = self.connections
        self.connections += 1

        async def send(ws, msg):
            await ws.send_str(json.dumps(msg))

        try:
            sub = json.loads((await ws.receive()).data)
            self.received.append(sub)
            await send(ws, {"result": None, "id": sub.get("id")})
            connections = self.script["connections"]
            if index < len(connections):
                await self.play(ws, connections[index], send)
            async for msg in ws:
                if msg.type == WSMsgType.CLOSE:
                    break
        finally:
            self._sockets.discard(ws)
        return ws
