"""Frame blocks: a batch's bar and equity frames in one row, read back exactly.

Runs on SQLite and PostgreSQL (the ``ledger`` fixture). The session-level tests
(published frames versus the ledger's) are in ``tests/session/test_frame_store.py``.
"""

from __future__ import annotations

import pytest

from alphaswarm.ledger import Ledger, LedgerError
from alphaswarm.ledger.frame_blocks import BLOCK_STAGES, decode_block, encode_block

RUN = "pr-blocks"


def envelope(seq: int, stage: str, **extras) -> dict:
    frame = {
        "task_id": RUN,
        "stage": stage,
        "message": f"{stage} {seq}",
        "timestamp": "2026-12-07T02:30:00.123Z",
        "ts": 1796610600.123 + seq / 7,
        "seq": seq,
        "recorded_at": "2026-12-07T02:30:00.123Z",
        "bar_time": None if seq == 1 else f"2024-01-02T15:{seq % 60:02d}:00.000Z",
    }
    frame.update(extras)
    return frame


def bar_frames(first: int, n: int) -> list[dict]:
    """Bar and equity frames of ``n`` bars from seq ``first``, with an order frame every 7."""
    out = []
    seq = first
    for i in range(n):
        bar = {
            "symbol": "DEMO",
            "ts": f"2024-01-02T15:{i % 60:02d}:00+00:00",
            "open": 100.1,
            "high": 101.0 + i / 3,
            "low": 99.9,
            "close": 0.1 + 0.2,
            "volume": 12_345,
        }
        positions = {"DEMO": {"qty": float(i), "avg_price": 100.0 + i / 7}} if i % 2 else {}
        out.append(envelope(seq, "bar.received", bar=bar, equity=1e5 + i / 3, positions=positions))
        seq += 1
        if i % 7 == 3:
            out.append(envelope(seq, "order.filled", fill={"qty": 1.0}, equity=1e5, positions={}))
            seq += 1
        out.append(envelope(seq, "equity.update", equity=1e5 + i / 3, cash=5e4, positions={}))
        seq += 1
    return out


def make_run(ledger: Ledger) -> None:
    ledger.create_paper_run({"id": RUN, "bot_id": "b", "starting_cash": 100_000.0})


def test_codec_keeps_every_key_value_and_order():
    frames = bar_frames(1, 25)
    frames[3]["extra"] = ["é", 2**53 + 1, None, {"nested": [1.5e-300, -0.0]}]
    blocked = [f for f in frames if f["stage"] in BLOCK_STAGES]
    decoded = decode_block(encode_block(blocked))
    assert decoded == blocked
    assert [list(f) for f in decoded] == [list(f) for f in blocked]  # key order too


def test_batch_stores_bar_and_equity_frames_as_one_block(ledger):
    make_run(ledger)
    first = bar_frames(1, 40)
    second = bar_frames(first[-1]["seq"] + 1, 30)
    ledger.write_batch(RUN, frames=first)
    ledger.write_batch(RUN, frames=second)
    published = first + second
    assert ledger.frames_after(RUN, 0) == published
    assert [list(f) for f in ledger.frames_after(RUN, 0)] == [list(f) for f in published]
    df = ledger.frames(RUN)
    assert df["seq"].tolist() == [f["seq"] for f in published]
    assert df["stage"].tolist() == [f["stage"] for f in published]
    assert list(df["frame"]) == published
    assert (df["paper_run_id"] == RUN).all()
    mid = published[len(published) // 2]["seq"]
    assert ledger.frames_after(RUN, mid) == [f for f in published if f["seq"] > mid]
    assert ledger.frames(RUN, since_seq=mid)["seq"].tolist() == [
        f["seq"] for f in published if f["seq"] > mid
    ]
    assert ledger.frames_after(RUN, 5, before=mid) == [f for f in published if 5 < f["seq"] < mid]
    assert ledger.frames_after(RUN, 0, stages=("order.filled",)) == [
        f for f in published if f["stage"] == "order.filled"
    ]
    assert ledger.frames_after(RUN, 0, stages=("bar.received",)) == [
        f for f in published if f["stage"] == "bar.received"
    ]
    # one block per batch; the order frames stay rows that SQL finds as before
    blocks = ledger.sql(
        "SELECT first_seq, last_seq, frames FROM paper_frame_blocks WHERE paper_run_id = :r "
        "ORDER BY first_seq",
        r=RUN,
    )
    assert len(blocks) == 2
    assert blocks["frames"].sum() == sum(f["stage"] in BLOCK_STAGES for f in published)
    rows = ledger.sql("SELECT stage FROM paper_frames WHERE paper_run_id = :r", r=RUN)
    assert set(rows["stage"]) == {"order.filled"}


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param([envelope(5, "bar.received")], id="bar-seq-in-a-stored-block"),
        pytest.param([envelope(5, "order.filled")], id="row-seq-in-a-stored-block"),
        pytest.param([envelope(7, "equity.update")], id="block-seq-of-a-stored-row"),
        pytest.param(
            [envelope(40, "bar.received"), envelope(40, "equity.update")], id="seq-twice-in-block"
        ),
        pytest.param([envelope(41, "bar.received", obj=object())], id="unserialisable"),
        pytest.param([envelope(True, "bar.received")], id="bool-seq"),
    ],
)
def test_duplicate_or_bad_block_frames_write_nothing(ledger, bad):
    make_run(ledger)
    stored = [envelope(s, "bar.received") for s in range(1, 7)] + [envelope(7, "order.placed")]
    ledger.write_batch(RUN, frames=stored, run_update={"bars_seen": 6})
    good = [envelope(30, "bar.received"), envelope(31, "equity.update")]
    with pytest.raises(LedgerError):
        ledger.write_batch(RUN, frames=good + bad, run_update={"bars_seen": 99})
    assert ledger.get_run(RUN)["bars_seen"] == 6
    assert ledger.frames_after(RUN, 0) == stored
    with pytest.raises(LedgerError):
        ledger.write_batches([(RUN, {"frames": good + bad, "run_update": {"bars_seen": 99}})])
    assert ledger.get_run(RUN)["bars_seen"] == 6
    assert ledger.frames_after(RUN, 0) == stored
    # a writer that has not written this run yet (another Ledger, a restarted process)
    with Ledger(url=ledger.url) as fresh, pytest.raises(LedgerError):
        fresh.write_batch(RUN, frames=good + bad, run_update={"bars_seen": 99})
    assert ledger.get_run(RUN)["bars_seen"] == 6
    assert ledger.frames_after(RUN, 0) == stored
