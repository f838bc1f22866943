"""Live views displayed in a real IPython kernel: the kernel stays free, nothing leaks.

The view's frame pump ticks on the kernel's own asyncio loop. When a tick takes
longer than the pump's period (a big view on a loaded machine), the kernel must
still run the next cell promptly: here every tick is made slower than the
period, and the next cell has to answer before the session (paced at one bar a
second) has gone much further.

When JupyterLab disposes of an output (the cell ran again, the output was
cleared, the notebook was closed), its HoloViz extension sends the kernel a
``delete`` event on the ``hv-extension-comm`` comm; the leak test sends those
events the same way and checks that no pump keeps ticking and no frame
subscription stays open.
"""

from __future__ import annotations

import json
import os
import queue
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

jupyter_client = pytest.importorskip("jupyter_client", reason="needs jupyter_client")
pytest.importorskip("ipykernel", reason="needs ipykernel")

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.ui, pytest.mark.notebooks, pytest.mark.timeout(600)]

#: The metadata key of a Panel output, holding the id of its root model.
OUTPUT_MIME = "application/vnd.holoviews_exec.v0+json"
#: The comm on which JupyterLab's HoloViz extension reports disposed outputs.
EXTENSION_COMM = "hv-extension-comm"

SETUP = '''
import time
import alphaswarm as aw
from alphaswarm.ui.base import FramePump
from alphaswarm.ui.session_view import SessionView

_tick = FramePump.tick


def slow_tick(self):
    """A tick longer than the pump's period, as a big view's on a loaded machine."""
    time.sleep(self.period / 1000 * 1.5)
    _tick(self)


FramePump.tick = slow_tick
bot = aw.Bot.from_yaml("""
name: kernel-demo
strategy: sma_cross
params: {fast: 3, slow: 10}
universe: [DEMO]
data: {feed: synthetic, seed: 7, interval: 1m}
risk: {max_order_notional: 50000, max_position_qty: 1000, max_drawdown_pct: 0.20,
       max_daily_loss: 5000, max_orders_per_minute: 30, kill_switch_attached: true}
""")
result = aw.backtest(bot, bars=2000)
session = aw.PaperSession(bot, speed=60, duration_minutes=None).start()
'''


class Kernel:
    """A real kernel started with jupyter_client; cells run one at a time."""

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import start_new_kernel

        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd))
        self._comm_id: str | None = None

    def run(self, code: str, timeout: float = 240) -> str:
        """Execute ``code``; its stdout once the reply came (AssertionError on error)."""
        return "".join(
            m["content"]["text"]
            for m in self.execute(code, timeout)
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    def display(self, code: str, cell_id: str | None = None) -> str:
        """Execute ``code`` whose value is a Panel view; the root model id of its output.

        ``cell_id`` is sent as JupyterLab sends it with a run of that cell.
        """
        refs = [
            m["content"]["metadata"][OUTPUT_MIME]["id"]
            for m in self.execute(code, cell_id=cell_id)
            if m["msg_type"] == "execute_result" and OUTPUT_MIME in m["content"]["metadata"]
        ]
        assert len(refs) == 1, refs
        return refs[0]

    def delete_output(self, ref: str) -> None:
        """Tell the kernel its output ``ref`` is gone, as JupyterLab's HoloViz extension does."""
        if self._comm_id is None:
            self._comm_id = uuid.uuid4().hex
            self._shell(
                "comm_open", {"comm_id": self._comm_id, "target_name": EXTENSION_COMM, "data": {}}
            )
        self._shell(
            "comm_msg", {"comm_id": self._comm_id, "data": {"event_type": "delete", "id": ref}}
        )

    def _shell(self, msg_type: str, content: dict[str, Any]) -> None:
        self.client.shell_channel.send(self.client.session.msg(msg_type, content))

    def execute(
        self, code: str, timeout: float = 240, cell_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Execute ``code``; its iopub messages once the reply came (AssertionError on error)."""
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}  # fmt: skip
        msg = self.client.session.msg(
            "execute_request", content, metadata={"cellId": cell_id} if cell_id else {}
        )
        self.client.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        while True:
            try:
                reply = self.client.get_shell_msg(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no reply within {timeout} s to {code!r}") from None
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        out: list[dict[str, Any]] = []
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=5)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            out.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        content = reply["content"]
        assert content["status"] == "ok", content.get("traceback") or content
        return out

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ALPHASWARM_DB_URL", f"sqlite:///{tmp_path}/ledger.db")
    monkeypatch.setenv("ALPHASWARM_HOME", str(tmp_path))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))
    k = Kernel(tmp_path)
    try:
        yield k
    finally:
        k.close()


def _bars(text: str) -> int:
    m = re.search(r"BARS (\d+)", text)
    assert m, text
    return int(m.group(1))


def test_next_cell_runs_while_a_slow_session_view_is_displayed(kernel: Kernel) -> None:
    kernel.run(SETUP)
    # displayed as a cell's value, as the README does with `session`
    kernel.run("view = SessionView(session)\nview")
    first = _bars(kernel.run("print('BARS', session.bars_seen, view.pump.running)"))
    # the view keeps ticking between cells, while the session trades on
    seen = first
    for _ in range(3):
        out = kernel.run("print('BARS', session.bars_seen, 'TICKS', view.pump.ticks)")
        bars = _bars(out)
        # each cell answers before the session has gone 30 more bars (30 s at this pace)
        assert bars - seen < 30, f"the cell waited {bars - seen} bars for the kernel"
        seen = bars
    ticks = int(re.search(r"TICKS (\d+)", out).group(1))
    assert ticks > 0, "the displayed view never ticked"
    assert "True" in kernel.run("print(session.status == 'running')")
    out = kernel.run(
        "aw.kill_switch().engage('test')\nprint('STATE', session.status)\naw.kill_switch().reset()"
    )
    assert "STATE killed" in out


LEAK_SETUP = """
import gc
import json
import alphaswarm as aw
from alphaswarm.bots import DEMO_SPEC
from alphaswarm.ui.base import FramePump
from alphaswarm.ui.multibot import MultiBotView
from alphaswarm.ui.session_view import SessionView

bot = aw.Bot(DEMO_SPEC)
session = aw.PaperSession(bot, speed=60, duration_minutes=None, force=True,
                          reason="leak test").start()


def counters():
    pumps = [o for o in gc.get_objects() if isinstance(o, FramePump)]
    print("COUNTERS", json.dumps({
        "ticking": sum(1 for p in pumps if p.running),
        "subscriptions": len(session.frames._subs),
    }))
"""


def _counters(kernel: Kernel, code: str = "") -> dict[str, int]:
    out = kernel.run(f"{code}\ncounters()")
    m = re.search(r"COUNTERS (\{.*\})", out)
    assert m, out
    return json.loads(m.group(1))


def test_deleted_outputs_leave_no_pump_or_subscription(kernel: Kernel) -> None:
    """Displaying a running session again and again, a view twice and re-running a
    multi-bot cell, then deleting every output (what JupyterLab does on a re-run and
    when the notebook is closed): the kernel keeps no pump ticking and no frame
    subscription open for them, while the session trades on."""
    kernel.run(LEAK_SETUP)
    assert _counters(kernel) == {"ticking": 0, "subscriptions": 0}
    refs = [kernel.display("session") for _ in range(3)]  # a new view each time
    kernel.run("view = SessionView(session)")
    view_refs = [kernel.display("view") for _ in range(2)]  # one view, two outputs
    board_refs = [kernel.display("board = MultiBotView()\nboard") for _ in range(2)]
    shown = _counters(kernel)
    assert shown == {"ticking": 3 + 1 + 2, "subscriptions": 3 + 1}, shown
    for ref in refs + board_refs + view_refs[:1]:
        kernel.delete_output(ref)
    # one output of the view is left: it stays live
    assert _counters(kernel) == {"ticking": 1, "subscriptions": 1}
    kernel.delete_output(view_refs[1])
    assert _counters(kernel) == {"ticking": 0, "subscriptions": 0}
    assert "running" in kernel.run("print(session.status)")
    # a cell that runs again replaces its output (JupyterLab sends the cell's id with each run)
    for _ in range(3):
        kernel.display("rerun_view = SessionView(session)\nrerun_view", cell_id="cell-rerun")
    assert _counters(kernel) == {"ticking": 1, "subscriptions": 1}
    kernel.execute("rerun_view.pump.ticks", cell_id="cell-rerun")  # its last run shows nothing
    assert _counters(kernel) == {"ticking": 0, "subscriptions": 0}
    # displayed again, the view catches up and follows the session to its end
    kernel.display("view")
    assert _counters(kernel) == {"ticking": 1, "subscriptions": 1}
    out = kernel.run(
        "import asyncio, time\n"
        "aw.kill_switch().engage('leak test')\n"
        "aw.kill_switch().reset()\n"
        "deadline = time.monotonic() + 120\n"
        "while view.card.status != session.status and time.monotonic() < deadline:\n"
        "    await asyncio.sleep(0.25)\n"
        "print('VIEW', view.card.status, view.card.fills_indicator.value,"
        " 'KERNEL', session.status, session.num_fills)"
    )
    m = re.search(r"VIEW (\w+) (\d+) KERNEL (\w+) (\d+)", out)
    assert m, out
    assert m.group(3) == "killed"
    assert (m.group(1), m.group(2)) == (m.group(3), m.group(4)), out


SILENCE_SETUP = """
import asyncio
from alphaswarm.ui import notebook_outputs

notebook_outputs.STALE_AFTER_S = 2.0


def report(ref):
    '''What the output's page does every few seconds: its heartbeat counts up.'''
    [beat] = [o for o in gc.get_objects()
              if isinstance(o, notebook_outputs.OutputHeartbeat) and o.ref == ref]
    beat.beat += 1


def outputs():
    print("OUTPUTS", notebook_outputs.count())
"""


def _outputs(kernel: Kernel, code: str = "") -> int:
    m = re.search(r"OUTPUTS (\d+)", kernel.run(f"{code}\noutputs()"))
    assert m
    return int(m.group(1))


def test_an_output_gone_silent_stops_its_pump_until_it_reports_again(kernel: Kernel) -> None:
    """Closing a notebook tells the kernel nothing. Until a page reports, outputs
    stay (a headless run has no page); once one has, an output silent for the
    timeout counts as gone (its pump stops, its subscription closes), including one
    shown just before the close that never reported; a report after that (a laptop
    waking up) brings it back; a deleted one is not revived."""
    kernel.run(LEAK_SETUP + SILENCE_SETUP)
    headless = kernel.display("session")
    assert _outputs(kernel, "await asyncio.sleep(3.5)") == 1  # no page yet: it stays
    assert _counters(kernel) == {"ticking": 1, "subscriptions": 1}
    on_page = kernel.display("session")  # a view of its own: a pump of its own
    assert _counters(kernel) == {"ticking": 2, "subscriptions": 2}
    kernel.run(f"report({on_page!r})")  # a page shows this kernel's outputs
    assert _outputs(kernel, "await asyncio.sleep(3.5)") == 0  # both silent since
    assert _counters(kernel) == {"ticking": 0, "subscriptions": 0}
    # the page reports again: its view is back, caught up and ticking
    assert _outputs(kernel, f"report({on_page!r})") == 1
    assert _counters(kernel) == {"ticking": 1, "subscriptions": 1}
    # deleted for good: a late report changes nothing
    kernel.delete_output(on_page)
    assert _outputs(kernel, f"report({on_page!r})") == 0
    assert _counters(kernel) == {"ticking": 0, "subscriptions": 0}
    # shown, then the notebook closed before its first report
    kernel.display("session")
    assert _outputs(kernel) == 1
    assert _outputs(kernel, "await asyncio.sleep(3.5)") == 0
    assert _counters(kernel) == {"ticking": 0, "subscriptions": 0}
    assert headless not in kernel.run("print(list(notebook_outputs._OUTPUTS))")
    assert "running" in kernel.run("print(session.status)")
