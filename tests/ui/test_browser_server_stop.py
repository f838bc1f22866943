"""A dashboard server stopped inside a process that goes on leaves no page behind.

Bokeh's server keeps its sessions when it stops and Panel keeps the server: before,
every page a stopped server had shown stayed alive with its pump, and collected an
update for Panel's busy indicator each time any callback ran in the process
(thousands per minute, tens of MB over a test run).
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from alphaswarm.ui.base import _PUMPS, FramePump
from tests.ui.conftest import start_app_server
from tests.ui.test_browser_dashboard import open_dashboard

pytestmark = pytest.mark.ui


def test_stopping_the_server_destroys_its_pages(page: Any, tmp_ledger: Any) -> None:
    from panel.io.state import state

    servers_before = len(state._servers)
    pumps_before = FramePump.live_pumps()
    thread = start_app_server(tmp_ledger)
    open_dashboard(page, thread.url + "/")
    assert FramePump.live_pumps() == pumps_before + 1
    assert len(state._servers) == servers_before + 1
    documents = [pump._doc for pump in list(_PUMPS.values()) if pump._doc is not None]
    assert documents and all(ref() is not None for ref in documents)

    thread.stop()  # the browser tab is still open

    assert FramePump.live_pumps() == pumps_before
    assert len(state._servers) == servers_before
    # what piled up before: an update queued on each kept page whenever a callback ran
    from panel.util import edit_readonly

    for _ in range(50):
        with edit_readonly(state):
            state.busy = True
            state.busy = False
    gc.collect()
    kept = [ref() for ref in documents if ref() is not None]
    left = [
        [getattr(cb.callback, "__qualname__", repr(cb.callback)) for cb in doc.session_callbacks]
        for doc in kept
    ]
    assert left == [[]] * len(kept), f"callbacks left on destroyed pages: {left}"
    assert all(doc.session_context is None or doc.session_context.destroyed for doc in kept)
