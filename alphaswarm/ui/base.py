"""The frame pump and the base class of every live dashboard component.

Streaming done right: the engine never waits for the UI. Each browser session
(each Bokeh document) owns exactly one :class:`FramePump`, which runs one
periodic callback. On every tick it drains one
:class:`~alphaswarm.frames.Subscription` per watched session and hands each
component the frames of its run in one batch, so each component makes at most
one model update per tick. Components that have no session (the kill switch,
the runs list) are polled on the same tick. Nothing here attaches a param
watcher to an engine-side object: all engine state is *pulled* on the tick.

When the browser session is destroyed the pump stops its callback, closes its
subscriptions and drops its components. A notebook has no sessions: there a
pump belongs to the outputs showing its views, and when the front end deletes
the last of them (the cell ran again, was cleared, or the notebook was closed)
the pump stops ticking and lets go of its subscriptions until a view of it is
displayed again (:mod:`alphaswarm.ui.notebook_outputs` tells when an output ends).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import panel as pn
import param

from alphaswarm.notebook import ensure_extension
from alphaswarm.paper.runtime import get_ledger
from alphaswarm.paper.session import PaperSession
from alphaswarm.stored_values import json_object as as_frame_dict  # noqa: F401 - for the views
from alphaswarm.stored_values import naive_utc as to_timestamp  # noqa: F401 - for the views
from alphaswarm.ui import notebook_documents, notebook_outputs
from alphaswarm.ui.socket_writes import (
    document_connections,
    watch_connections,
    watch_write_tasks,
)

if TYPE_CHECKING:
    from alphaswarm.frames import Subscription
    from alphaswarm.ledger import Ledger

log = logging.getLogger(__name__)

#: Pumps of live server documents, keyed by ``id(document)``.
_PUMPS: dict[int, FramePump] = {}
_PUMPS_LOCK = threading.Lock()
#: Every pump not garbage collected yet (for leak checks), served or not.
_ALL_PUMPS: weakref.WeakSet[FramePump] = weakref.WeakSet()


def stream_rows(table: pn.widgets.Tabulator, rows: pd.DataFrame, rollover: int) -> None:
    """Append ``rows`` to a Tabulator, keeping at most ``rollover`` rows.

    Streams when the table is on screen; before it is rendered the value is
    replaced instead (a stream into a table with no model is not shown once the
    table renders).
    """
    if table._models:
        table.stream(rows, rollover=rollover, follow=True)
        return
    current = table.value
    if current is None or not len(current):
        table.value = rows.tail(rollover).reset_index(drop=True)
    else:
        merged = pd.concat([current, rows], ignore_index=True)
        table.value = merged.tail(rollover).reset_index(drop=True)


def browser_connected(doc: Any) -> bool:
    """False once every browser connection of a served document has closed.

    A closed tab's document lives on until the server's next clean-up; updating
    its models meanwhile makes Panel write to a closed websocket, which fails in
    a task nobody awaits. Documents outside a server (notebooks, tests) count as
    connected.
    """
    context = getattr(doc, "session_context", None)
    session = getattr(context, "_session", None)
    if session is None:
        return True
    connections = getattr(session, "_subscribed_connections", None)
    if connections is None:
        return True
    for connection in list(connections):
        ws = getattr(getattr(connection, "_socket", None), "ws_connection", None)
        if ws is None or ws.is_closing():
            continue
        # the TCP stream can be gone before the websocket has processed its close
        stream = getattr(ws, "stream", None)
        if stream is not None and stream.closed():
            continue
        return True
    return False


def served_document() -> Any | None:
    """The server session document this thread is running, or None.

    ``pn.state.curdoc`` falls back to Bokeh's patched current document, which is
    process-wide: while a Panel server in the same process (a notebook that also
    serves the dashboard, a test server) runs a session callback on its own thread,
    every other thread sees that session's document as "current". A notebook output
    built or ticked then would stream, cache stylesheets and hold a document that
    is not its own. The document counts only when this thread runs its server loop.
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return None
    try:
        app_context = doc.session_context.server_context.application_context
        loop = app_context.io_loop
    except Exception:  # noqa: BLE001 - a session context without a server loop
        return doc
    if loop is None:
        return doc
    from tornado.ioloop import IOLoop

    try:
        current = IOLoop.current(instance=False)
    except RuntimeError:
        current = None
    return doc if current is loop else None


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    """True when called from ``loop``'s own thread, while it runs."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class LoopTicker:
    """Runs a pump's tick on the current asyncio loop (a notebook kernel's), yielding.

    Panel's periodic callback outside a server runs its ticks back to back with no
    pause once a tick takes longer than the period, and a plain callback never gives
    the loop a turn in between: in a kernel, the next cell then waits until the ticks
    get short again, minutes on a loaded machine. Here the pause after a tick is at
    least as long as the tick itself, so the pump uses at most half the kernel's loop
    and the cells, comms and output queued on it run in between.

    Parameters
    ----------
    tick : callable
        Called once per period on the loop's thread.
    period : float
        Seconds between the starts of two ticks when a tick is short.
    """

    def __init__(self, tick: Any, period: float) -> None:
        self._tick = tick
        self.period = period
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            t0 = time.monotonic()
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - a failed tick never ends the view
                log.exception("frame pump tick failed")
            busy = time.monotonic() - t0
            await asyncio.sleep(max(self.period - busy, busy))

    @property
    def done(self) -> bool:
        """True once the ticking task has ended."""
        return self._task.done()

    def stop(self) -> None:
        """Cancel the ticking task (from any thread)."""
        if _running_on(self._loop):
            self._task.cancel()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)


class FramePump:
    """One periodic callback per browser session that feeds every live component.

    Parameters
    ----------
    period : int
        Milliseconds between ticks (250 to 1000).
    stop_when_idle : bool
        Stop the periodic callback once every watched session has finished and
        its last frames were delivered (used for notebook views, which have no
        session-destroyed event). A pump feeding a component bound to no run
        (the kill switch) does not idle.
    """

    PERIOD_BOUNDS: ClassVar[tuple[int, int]] = (250, 1000)

    def __init__(self, period: int = 500, *, stop_when_idle: bool = False) -> None:
        lo, hi = self.PERIOD_BOUNDS
        if not lo <= period <= hi:
            raise ValueError(f"period: expected {lo} to {hi} ms, got {period}")
        self.period = int(period)
        self.stop_when_idle = stop_when_idle
        self._lock = threading.RLock()
        self._components: list[LiveView] = []
        self._subs: dict[int, tuple[PaperSession, Subscription]] = {}  # by id(session)
        self._callback: Any = None
        self._doc: weakref.ReferenceType[Any] | None = None
        self.ticks = 0
        self.closed = False
        self.suspended = False
        self.last_tick_ms = 0.0
        self._recent: tuple[tuple[int, int], list[dict[str, Any]]] | None = None
        self._outputs: set[str] = set()
        #: The loop a notebook pump ticks on (set when it first starts).
        self._loop: asyncio.AbstractEventLoop | None = None
        _ALL_PUMPS.add(self)

    # -- the pump of the current document -------------------------------------------
    @classmethod
    def current(cls, period: int = 500) -> FramePump:
        """The pump of the current browser session (created and started on first use).

        Outside a server session (a notebook cell, a test) a fresh pump is returned;
        it starts itself when an asyncio loop runs in this thread (Jupyter) and
        stops once its sessions have finished.

        Parameters
        ----------
        period : int
            Milliseconds between ticks, used when the pump is created here.
        """
        doc = served_document()
        if doc is None:
            pump = cls(period, stop_when_idle=True)
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return pump  # no loop: the caller ticks by hand
            pump.start()
            return pump
        key = id(doc)
        with _PUMPS_LOCK:
            pump = _PUMPS.get(key)
            if pump is not None and not pump.closed:
                return pump
            pump = _PUMPS[key] = cls(period)
            pump._doc = weakref.ref(doc)
        # a write failing because the tab closed is retrieved, never left to hold the document
        watch_write_tasks(doc)
        pump.start()

        ref = weakref.ref(pump)

        def _destroyed(_context: Any) -> None:
            with _PUMPS_LOCK:
                _PUMPS.pop(key, None)
            p = ref()
            if p is not None:
                p.close()

        pn.state.on_session_destroyed(_destroyed)
        return pump

    @staticmethod
    def live_pumps() -> int:
        """How many browser sessions currently own a pump (for leak checks)."""
        with _PUMPS_LOCK:
            return len(_PUMPS)

    @staticmethod
    def ticking_pumps() -> int:
        """How many pumps of this process have their callback scheduled (for leak checks)."""
        return sum(1 for pump in list(_ALL_PUMPS) if pump.running)

    @staticmethod
    def notebook_outputs() -> int:
        """Notebook outputs whose views a pump feeds (for leak checks)."""
        return notebook_outputs.count()

    # -- lifecycle ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the periodic callback is scheduled."""
        return self._callback is not None

    def start(self) -> None:
        """Schedule the periodic callback (once)."""
        if self._callback is not None or self.closed:
            return
        doc = served_document()
        if doc is None:
            try:
                self._callback = LoopTicker(self.tick, self.period / 1000)
                self._loop = self._callback._loop
            except RuntimeError:  # no loop runs here: the caller ticks by hand
                pass
            return
        callback = pn.state.add_periodic_callback(self.tick, period=self.period, start=False)
        callback.log = False  # one line per tick per browser would flood the server log
        callback.start()
        self._callback = callback

    def stop(self) -> None:
        """Cancel the periodic callback; components and subscriptions stay."""
        cb, self._callback = self._callback, None
        if cb is not None:
            try:
                cb.stop()
            except Exception:  # noqa: BLE001 - the document may already be gone
                log.debug("periodic callback stop failed", exc_info=True)

    def close(self) -> None:
        """Stop, close every subscription and drop every component."""
        self.stop()
        with self._lock:
            self.closed = True
            self._recent = None
            subs, self._subs = self._subs, {}
            components, self._components = self._components, []
            outputs, self._outputs = self._outputs, set()
        for ref in outputs:
            notebook_outputs.forget(ref)
        for _session, sub in subs.values():
            sub.close()
        for component in components:
            component._pump_closed()

    # -- notebook outputs -----------------------------------------------------------
    @property
    def outputs(self) -> int:
        """Notebook outputs showing this pump's views."""
        with self._lock:
            return len(self._outputs)

    def output_shown(self, ref: str) -> None:
        """A notebook output with root model id ``ref`` shows this pump's views."""
        if self._doc is not None:  # a served document's pump lives with its session
            return
        notebook_outputs.shown(ref, self)
        with self._lock:
            self._outputs.add(ref)

    def output_deleted(self, ref: str) -> None:
        """The front end deleted output ``ref``; suspend once no output is left."""
        with self._lock:
            self._outputs.discard(ref)
            left = bool(self._outputs)
        if not left and self._doc is None:
            self.suspend()

    def output_revived(self, ref: str) -> None:
        """Output ``ref``, counted gone after a silence, is on a page again: resume.

        The report arrives on whichever thread the kernel applies the page's messages
        on; the views catch up on the loop this pump ticks on.
        """
        with self._lock:
            self._outputs.add(ref)
        loop = self._loop
        if loop is not None and not loop.is_closed() and not _running_on(loop):
            loop.call_soon_threadsafe(self.resume)
            return
        self.resume()

    def suspend(self) -> None:
        """Stop ticking and close every subscription; the components stay attached.

        :meth:`resume` (displaying a view of this pump again) catches them up.
        """
        self.stop()
        with self._lock:
            self.suspended = True
            subs, self._subs = self._subs, {}
        for _session, sub in subs.values():
            sub.close()

    def resume(self) -> None:
        """Undo :meth:`suspend`: subscribe again, catch the components up and tick."""
        with self._lock:
            if not self.suspended or self.closed:
                return
            self.suspended = False
            components = list(self._components)
        for component in components:
            self.subscribe(component.session)
        # what happened meanwhile: the frames the buses still hold (each view skips
        # the ones it has seen, by seq) and the engine state the views poll
        with notebook_documents.batch(components):
            for component in components:
                session = component.session
                frames = session.frames.recent() if session is not None else []
                try:
                    component.refresh(frames)
                except Exception:  # noqa: BLE001 - one broken view never stops the others
                    log.exception("%s failed to catch up", type(component).__name__)
        self.start()

    # -- registration ---------------------------------------------------------------
    def subscribe(self, session: PaperSession | None) -> None:
        """Make sure the frames of ``session`` are buffered for the next tick.

        A finished session is listened to until its frame bus closes: its final batch
        (the fills of a flatten, the ``done`` frame) is published after it finished,
        once committed, and a view built in between finds it nowhere else.
        """
        if session is None or session.frames.closed or self.closed or self.suspended:
            return
        with self._lock:
            if id(session) not in self._subs:
                self._subs[id(session)] = (session, session.frames.subscribe())

    def attach(self, component: LiveView) -> None:
        """Feed ``component`` from now on (subscribing to its session if needed)."""
        if self.closed:  # the browser session is gone
            component._pump_closed()
            return
        self.subscribe(component.session)
        with self._lock:
            if component in self._components:
                return
            self._components.append(component)

    def detach(self, component: LiveView) -> None:
        """Stop feeding ``component``; close its run's subscription when nobody is left."""
        with self._lock:
            if component in self._components:
                self._components.remove(component)
            self._release_unused()

    def _release_unused(self) -> None:
        wanted = {id(c.session) for c in self._components if c.session is not None}
        for key in [k for k in self._subs if k not in wanted]:
            _session, sub = self._subs.pop(key)
            sub.close()

    def recent(self, session: PaperSession) -> list[dict[str, Any]]:
        """The frames ``session`` holds in memory, for a component being built.

        The components of one run view are built together and each loads the same
        recent frames: they are read once until the session publishes another one (a
        subscription hands every subscriber the same frame dicts the same way).
        """
        key = (id(session), session.frames.published)
        cached = self._recent
        if cached is None or cached[0] != key:
            cached = self._recent = (key, session.frames.recent())
        return list(cached[1])

    @property
    def components(self) -> list[LiveView]:
        """The components fed by this pump."""
        with self._lock:
            return list(self._components)

    @property
    def subscriptions(self) -> int:
        """Open frame subscriptions."""
        with self._lock:
            return len(self._subs)

    # -- the tick -------------------------------------------------------------------
    def tick(self) -> None:
        """Drain every subscription and give each component its frames in one batch.

        A served document whose browser tab has closed is not updated (its frames wait
        in the subscriptions until the server destroys the session and this pump closes).
        """
        doc = self._doc() if self._doc is not None else None
        if doc is not None:
            watch_connections(document_connections(doc))  # tabs connected since the last tick
            if not browser_connected(doc):
                return
        t0 = time.perf_counter()
        with self._lock:
            batches: dict[int, list[dict[str, Any]]] = {}
            for key, (session, sub) in list(self._subs.items()):
                frames = sub.drain()
                batches[key] = frames
                if sub.closed and not frames and session.finished:
                    # the bus is closed and everything was delivered: stop listening
                    del self._subs[key]
                    sub.close()
            components = list(self._components)
        changed = any(batches.values())
        served = doc if doc is not None else served_document()
        if served is not None:
            # One held document per tick: the browser gets one combined message. When
            # plots will update, the document is also frozen so Bokeh recomputes its
            # model graph once per tick instead of once per plot (an idle tick skips it).
            updating = pn.io.hold(served, freeze=changed)
        else:
            # notebook outputs: the same, one message per output (see notebook_documents)
            updating = notebook_documents.batch(components, freeze=changed)
        with updating:
            for component in components:
                try:
                    component.refresh(batches.get(id(component.session), []))
                except Exception:  # noqa: BLE001 - one broken view never stops the others
                    log.exception(
                        "dashboard component %s failed to update", type(component).__name__
                    )
        self.ticks += 1
        self.last_tick_ms = (time.perf_counter() - t0) * 1e3
        if self.stop_when_idle and not self._subs and self.running:
            # a component bound to no run (the kill switch) polls for as long as it is
            # shown: its pump stops when its notebook output is deleted
            if all(c.ended for c in components):
                self.stop()


def run_params(session: PaperSession | str | None, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the ``session`` and ``run_id`` a view of ``session`` is bound to.

    Parameters
    ----------
    session : PaperSession or str, optional
        A live session, or the id of a run to read back from the ledger.
    params : dict
        The view's other parameters (a ``run_id`` given there wins).
    """
    if isinstance(session, str):
        return {"run_id": session, **params}
    if session is None:
        return params
    return {"run_id": session.paper_run_id, **params, "session": session}


class KitViewer(pn.viewable.Viewer):
    """A Panel viewer that loads the kit's notebook extension before it is displayed.

    A viewer fed by a :class:`FramePump` (a ``pump`` parameter) ties the pump to the
    notebook output: the output carries a hidden
    :class:`~alphaswarm.ui.notebook_outputs.OutputHeartbeat`; deleting the output,
    or its page going silent (the notebook was closed), suspends the pump, and
    displaying it again resumes it.
    """

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        ensure_extension()
        pump = getattr(self, "pump", None)
        if not isinstance(pump, FramePump):
            return super()._repr_mimebundle_(include, exclude)
        pump.resume()
        view = self._create_view()
        heartbeat = notebook_outputs.OutputHeartbeat(period_ms=notebook_outputs.BEAT_MS)
        shown = notebook_documents.KitOutput(
            view, heartbeat, margin=0, sizing_mode=view.sizing_mode
        )
        bundle = shown._repr_mimebundle_(include, exclude)
        ref = notebook_outputs.output_ref(bundle)
        if ref is not None:
            heartbeat.ref = ref
            pump.output_shown(ref)
        return bundle


class LiveView(KitViewer):
    """Base of the dashboard components: bound to a live session or a finished run.

    Subclasses build their Panel objects in :meth:`_build`, load what happened
    before they were created in :meth:`_load` (live: the bus's recent frames and
    the ledger; finished: the ledger only), and apply each tick's new frames in
    :meth:`_update` with at most one model update.

    Parameters
    ----------
    session : PaperSession or str, optional
        The live session, or the id of a run to read back from the ledger.
    """

    session = param.ClassSelector(
        class_=PaperSession,
        default=None,
        allow_None=True,
        doc="The live paper session shown; None for a finished run read from the ledger.",
    )
    run_id = param.String(default="", doc="The paper run shown (taken from the session if any).")
    pump = param.Parameter(
        default=None,
        doc="The FramePump feeding this component; the current browser session's by default.",
    )
    ledger = param.Parameter(
        default=None, doc="Ledger to read history from; the session's or the process default."
    )

    def __init__(self, session: PaperSession | str | None = None, **params: Any) -> None:
        super().__init__(**run_params(session, params))
        self._last_seq = 0
        self._closed = False
        self._build()
        if self.pump is None:
            self.pump = FramePump.current()
        # subscribe before reading the history, so no frame falls between the two
        self.pump.subscribe(self.session)
        try:
            self._load()
        except Exception:  # noqa: BLE001 - a view without history is better than none
            log.exception("%s could not load the history of %s", type(self).__name__, self.run_id)
        self.pump.attach(self)

    # -- helpers --------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """True while bound to a session that has not finished."""
        return self.session is not None and not self.session.finished

    @property
    def ended(self) -> bool:
        """True once nothing this view shows can change (its pump may then idle).

        Its session finished, or it shows a finished run; a view bound to no run
        (the kill switch) never ends.
        """
        if self.session is not None:
            return self.session.finished
        return bool(self.run_id)

    def ledger_(self) -> Ledger:
        """Where history is read from."""
        if self.ledger is not None:
            return self.ledger
        if self.session is not None:
            return self.session.ledger_
        return get_ledger()

    def run_row(self) -> dict[str, Any] | None:
        """The ``paper_trading_runs`` row of the run (None if unknown)."""
        if not self.run_id:
            return None
        return self.ledger_().get_run(self.run_id)

    def recent_frames(self) -> list[dict[str, Any]]:
        """Frames the live session still holds in memory (for late joiners)."""
        if self.session is None:
            return []
        if isinstance(self.pump, FramePump):
            return self.pump.recent(self.session)
        return self.session.frames.recent()

    def _new(self, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Frames not seen yet (by ``seq``); lag notices always pass."""
        out = []
        last = self._last_seq
        for frame in frames:
            seq = frame.get("seq")
            if seq is None:
                out.append(frame)
            elif seq > last:
                out.append(frame)
                last = seq
        self._last_seq = last
        return out

    # -- the pump's entry point -----------------------------------------------------
    def refresh(self, frames: list[dict[str, Any]]) -> None:
        """Apply one tick: the new frames of this run (possibly none) in one update."""
        if self._closed:
            return
        if self.session is not None and not self.run_id and self.session.paper_run_id:
            self.run_id = self.session.paper_run_id  # displayed before it was started
        self._update(self._new(frames))

    def close(self) -> None:
        """Stop receiving ticks (the browser session or the selection moved on)."""
        self._closed = True
        if self.pump is not None:
            self.pump.detach(self)

    def _pump_closed(self) -> None:
        self._closed = True

    # -- for subclasses -------------------------------------------------------------
    def _build(self) -> None:
        """Create the Panel objects."""

    def _load(self) -> None:
        """Load the history (recent frames of a live session, or the ledger)."""
        if self.session is not None:
            self._update(self._new(self.recent_frames()))

    def _update(self, frames: list[dict[str, Any]]) -> None:
        """Apply new frames (and poll engine state) with one model update."""
