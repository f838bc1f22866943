"""``WS /ws/paper/{id}``: the JSON frames of one paper run, live, with ``?since=`` resume.

Order of operations, so nothing is lost or sent twice:

1. subscribe to the live session's FrameBus (when it runs in this process);
2. replay from the ledger every stored frame with ``seq > since`` (a session
   commits a frame before it publishes it, so whatever was published before
   step 1 is already stored);
3. forward live frames, skipping any ``seq`` already sent;
4. close with code 1000 after the ``done`` frame.

A run that lives in another process (a shared PostgreSQL ledger) is followed by
polling the ledger. An unknown run gets an ``error`` frame and close code 4404.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from tornado.ioloop import IOLoop
from tornado.web import HTTPError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from alphaswarm.frames import make_frame
from alphaswarm.jsoncodec import dumps_lenient
from alphaswarm.paper.session import FINAL_STATUSES
from alphaswarm.server.errors import ERROR_CODES, ApiError, misdirected
from alphaswarm.server.limits import MAX_SINCE
from alphaswarm.server.route_context import RouteContext
from alphaswarm.server.security import Security, redact, same_origin

if TYPE_CHECKING:
    from alphaswarm.frames import Subscription
    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.runtime import Runtime

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_ERROR = 4500
#: Seconds between ledger polls when the run lives in another process.
POLL_SECONDS = 0.25
#: Seconds a finished run's follower waits for its ``done`` frame to be committed.
DONE_GRACE_SECONDS = 10.0


class PaperSocket(RouteContext, WebSocketHandler):
    """Stream the frames of one paper run.

    Parameters (route kwargs)
    -------------------------
    ledger : Ledger or None
        Where stored frames are read (the process default when ``None``).
    security : Security
        Token settings.
    """

    #: Sockets of this process that are streaming (for a clean shutdown).
    _streaming: ClassVar[set[PaperSocket]] = set()

    @classmethod
    def streaming(cls) -> int:
        """How many sockets of this process are still streaming frames."""
        return len(cls._streaming)

    def initialize(
        self,
        ledger: Ledger | None = None,
        security: Security | None = None,
        runtime: Runtime | None = None,
        **_: Any,
    ) -> None:
        """Take the route kwargs (the HTTP handlers' other kwargs are ignored)."""
        self._take_context(ledger, runtime, security)
        self._closed = False
        self._sub: Subscription | None = None
        self._last_seq = 0
        self._pump: asyncio.Task | None = None

    def check_origin(self, origin: str) -> bool:
        """Refuse upgrades from any origin but the server's own (tornado answers 403)."""
        return same_origin(origin, self.request.host)

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Refuse a plain GET or a foreign origin with a JSON error, then upgrade.

        Tornado answers these cases itself with a plain-text body; checking them
        first keeps every error of the API ``{error, detail}``.
        """
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket":
            raise HTTPError(400, "not a WebSocket upgrade: this route needs 'Upgrade: websocket'")
        if "upgrade" not in [s.strip().lower() for s in headers.get("Connection", "").split(",")]:
            raise HTTPError(400, "not a WebSocket upgrade: 'Connection' must be 'Upgrade'")
        origin = headers.get("Origin", headers.get("Sec-Websocket-Origin"))
        if origin is not None and not self.check_origin(origin):
            raise HTTPError(403, f"cross-origin WebSocket refused: Origin {origin!r}")
        await super().get(*args, **kwargs)

    def prepare(self) -> None:
        """Refuse the upgrade to a foreign ``Host`` or without the token (when one is set)."""
        if not self.security.host_allowed(self.request.host):
            raise misdirected(self.request.host)
        if not self.security.authorized(self.request):
            raise HTTPError(401, "this server needs 'Authorization: Bearer <token>' or ?token=")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors before the upgrade are JSON too."""
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.set_status(exc.status)
            self.finish(dumps_lenient(exc.body()))
            return
        detail = exc.log_message if isinstance(exc, HTTPError) and exc.log_message else None
        error = ERROR_CODES.get(status_code, "websocket")
        self.finish(dumps_lenient({"error": error, "detail": detail or self._reason}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """A refused upgrade is logged briefly (its URI redacted)."""
        if isinstance(value, ApiError):
            log.info("%s -> %d: %s", self._request_summary(), value.status, value.detail)
            return
        super().log_exception(typ, value, tb)

    def _request_summary(self) -> str:
        return redact(super()._request_summary())

    async def open(self, run_id: str) -> None:  # type: ignore[override]
        """Start streaming (the work runs in a task so ``on_message`` stays responsive)."""
        self.run_id = run_id
        raw = self.get_query_argument("since", None)
        since: int | None = None
        if raw not in (None, ""):
            try:
                text = raw.strip()
                if not text.isdigit() or len(text) > 19 or int(text) > MAX_SINCE:
                    raise ValueError
                since = int(text)
            except ValueError:
                await self._fail(
                    CLOSE_BAD_REQUEST,
                    f"since: expected a whole number from 0 to {MAX_SINCE}, got {raw[:30]!r}",
                )
                return
        PaperSocket._streaming.add(self)
        self._pump = asyncio.ensure_future(self._stream(since))

    async def _send(self, frame: dict[str, Any]) -> bool:
        if self._closed:
            return False
        try:
            await self.write_message(dumps_lenient(frame))
        except WebSocketClosedError:
            self._closed = True
            return False
        seq = frame.get("seq")
        if isinstance(seq, int):
            self._last_seq = max(self._last_seq, seq)
        return True

    async def _send_batch(self, frames: list[dict[str, Any]]) -> bool:
        """Write every frame, then wait once for the socket (not once per frame)."""
        if self._closed:
            return False
        future = None
        try:
            for frame in frames:
                if future is not None:
                    future.add_done_callback(_consume)  # only the last one is awaited
                future = self.write_message(dumps_lenient(frame))
                seq = frame.get("seq")
                if isinstance(seq, int):
                    self._last_seq = max(self._last_seq, seq)
            if future is not None:
                await future
        except WebSocketClosedError:
            self._closed = True
            return False
        return True

    async def _fail(self, code: int, message: str) -> None:
        frame = make_frame(getattr(self, "run_id", ""), "error", message, None, error=message)
        await self._send(frame)
        self.close(code, message[:120])

    async def _replay(self, after: int) -> bool:
        """Send stored frames with ``seq > after``; True once ``done`` was sent."""
        loop = IOLoop.current()
        frames = await loop.run_in_executor(None, self.ledger.frames_after, self.run_id, after)
        for frame in frames:
            seq = frame.get("seq")
            if isinstance(seq, int) and seq <= self._last_seq:
                continue
            if not await self._send(frame):
                return True
            if frame.get("stage") == "done":
                return True
        return False

    async def _stream(self, since: int | None) -> None:
        try:
            await self._stream_inner(since)
        except Exception as exc:  # noqa: BLE001 - the socket closes with a reason, never hangs
            log.exception("websocket stream of %s failed", self.run_id)
            if not self._closed:
                await self._fail(CLOSE_ERROR, f"stream failed: {type(exc).__name__}")
            return
        if not self._closed:
            self.close(CLOSE_NORMAL, "done")
        PaperSocket._streaming.discard(self)

    async def _stream_inner(self, since: int | None) -> None:
        session = self.runtime.registry.get(self.run_id)
        if session is not None and not session.finished:
            self._sub = session.frames.subscribe()
        loop = IOLoop.current()
        run = await loop.run_in_executor(None, self.ledger.get_run, self.run_id)
        if run is None and session is None:
            await self._fail(CLOSE_NOT_FOUND, f"unknown paper run {self.run_id!r}")
            return
        live = self._sub is not None
        # without ?since= a live run streams from now on; a finished one replays it all
        if since is not None or not live:
            self._last_seq = since or 0
            if await self._replay(self._last_seq):
                return
        if live:
            await self._forward_live()
        else:
            await self._follow_ledger(run is not None and run["status"] not in FINAL_STATUSES)

    async def _forward_live(self) -> None:
        sub = self._sub
        assert sub is not None
        while not self._closed:
            frames = await sub.get(timeout=5.0)
            batch = []
            for frame in frames:
                seq = frame.get("seq")
                if isinstance(seq, int) and seq <= self._last_seq:
                    continue
                batch.append(frame)
                if frame.get("stage") == "done":
                    break
            if batch and not await self._send_batch(batch):
                return
            if batch and batch[-1].get("stage") == "done":
                return
            if not frames and sub.closed:
                # the bus closed without us seeing done (dropped as lag): finish from the ledger
                await self._replay(self._last_seq)
                return

    async def _follow_ledger(self, was_running: bool) -> None:
        """The run lives elsewhere (or is finished): poll the ledger until it ends.

        ``was_running`` says whether the run was still running when the stream began: a
        run that ends while followed (from then on) gets a grace for its ``done``.
        """
        loop = IOLoop.current()
        deadline_idle = time.monotonic() + 3600
        while not self._closed and time.monotonic() < deadline_idle:
            run = await loop.run_in_executor(None, self.ledger.get_run, self.run_id)
            if await self._replay(self._last_seq):
                return
            if run is None or run["status"] in FINAL_STATUSES:
                # a run that ended while followed: its final row can be committed before
                # its last frames (the kill switch commits the stop first), so wait a
                # little for ``done``
                grace = time.monotonic() + (DONE_GRACE_SECONDS if was_running else 0.0)
                while not await self._replay(self._last_seq):
                    if self._closed or run is None or time.monotonic() > grace:
                        return
                    await asyncio.sleep(POLL_SECONDS)
                return
            was_running = True
            await asyncio.sleep(POLL_SECONDS)

    def on_message(self, message: str | bytes) -> None:
        """Clients have nothing to say; messages are ignored."""

    def on_close(self) -> None:
        """Stop forwarding."""
        self._closed = True
        PaperSocket._streaming.discard(self)
        if self._sub is not None:
            self._sub.close()


def _consume(future: Any) -> None:
    """Retrieve a finished write's outcome (a closed socket is handled on the last one)."""
    if not future.cancelled():
        future.exception()
