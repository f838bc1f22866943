"""A live session view displayed in a real IPython kernel leaves the kernel free.

The view's frame pump ticks on the kernel's own asyncio loop. When a tick takes
longer than the pump's period (a big view on a loaded machine), the kernel must
still run the next cell promptly: here every tick is made slower than the
period, and the next cell has to answer before the session (paced at one bar a
second) has gone much further.
"""

from __future__ import annotations

import os
import queue
import re
import sys
from pathlib import Path
from typing import Any

import pytest

jupyter_client = pytest.importorskip("jupyter_client", reason="needs jupyter_client")
pytest.importorskip("ipykernel", reason="needs ipykernel")

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.ui, pytest.mark.notebooks, pytest.mark.timeout(600)]

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

    def run(self, code: str, timeout: float = 240) -> str:
        """Execute ``code``; its stdout once the reply came (AssertionError on error)."""
        msg_id = self.client.execute(code)
        while True:
            try:
                reply = self.client.get_shell_msg(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no reply within {timeout} s to {code!r}") from None
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        out: list[str] = []
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=5)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        content = reply["content"]
        assert content["status"] == "ok", content.get("traceback") or content
        return "".join(out)

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
