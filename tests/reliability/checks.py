"""Ledger invariants that must hold after any crash, flood or concurrent write.

Every query is parameterised SQL through :meth:`alphaswarm.ledger.Ledger.sql`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from alphaswarm.ledger import Ledger


def _ids(ledger: Ledger, query: str) -> list[str]:
    return [str(v) for v in ledger.sql(query).iloc[:, 0].tolist()]


def ledger_problems(ledger: Ledger, live: Iterable[str] = ()) -> list[str]:
    """Every broken invariant of the ledger, as sentences (empty when consistent).

    Parameters
    ----------
    ledger : Ledger
        The ledger to check.
    live : iterable of str
        Runs still trading in a live process: allowed to be ``running``.
    """
    live = set(live)
    problems: list[str] = []
    orphans = {
        "fill without its order": "SELECT f.id FROM paper_fills f LEFT JOIN paper_orders o "
        "ON o.id = f.order_id WHERE o.id IS NULL",
        "fill without its run": "SELECT f.id FROM paper_fills f LEFT JOIN paper_trading_runs r "
        "ON r.id = f.paper_run_id WHERE r.id IS NULL",
        "order without its run": "SELECT o.id FROM paper_orders o LEFT JOIN paper_trading_runs r "
        "ON r.id = o.paper_run_id WHERE r.id IS NULL",
        "equity point without its run": "SELECT e.paper_run_id FROM paper_equity e LEFT JOIN "
        "paper_trading_runs r ON r.id = e.paper_run_id WHERE r.id IS NULL",
        "frame without its run": "SELECT f.paper_run_id FROM paper_frames f LEFT JOIN "
        "paper_trading_runs r ON r.id = f.paper_run_id WHERE r.id IS NULL",
        "frame block without its run": "SELECT b.paper_run_id FROM paper_frame_blocks b "
        "LEFT JOIN paper_trading_runs r ON r.id = b.paper_run_id WHERE r.id IS NULL",
    }
    for what, query in orphans.items():
        found = _ids(ledger, query)
        if found:
            problems.append(f"{len(found)} {what}: {found[:5]}")
    runs = ledger.sql(
        "SELECT r.id, r.status, r.total_pnl, r.num_fills, r.bars_seen, "
        "(SELECT count(*) FROM paper_fills f WHERE f.paper_run_id = r.id) AS fills, "
        "(SELECT count(*) FROM paper_equity e WHERE e.paper_run_id = r.id) AS points "
        "FROM paper_trading_runs r"
    )
    for run in runs.to_dict("records"):
        rid = run["id"]
        if run["status"] == "running" and rid not in live:
            problems.append(f"{rid}: left running by a dead process")
        if run["total_pnl"] is None or run["total_pnl"] != run["total_pnl"]:
            problems.append(f"{rid} ({run['status']}): total_pnl is NULL")
        if rid in live:
            continue  # counters of a live run move while we read
        # frames are paper_frames rows and paper_frame_blocks: counted as the ledger reads them
        frames = ledger.frames(rid)
        seqs = frames["seq"]
        run["bar_frames"] = int((frames["stage"] == "bar.received").sum())
        run["frames"], run["seqs"] = len(frames), seqs.nunique()
        run["min_seq"] = int(seqs.min()) if len(seqs) else None
        run["max_seq"] = int(seqs.max()) if len(seqs) else None
        if run["num_fills"] != run["fills"]:
            problems.append(f"{rid}: num_fills {run['num_fills']} but {run['fills']} fills")
        if not run["bars_seen"] == run["points"] == run["bar_frames"]:
            problems.append(
                f"{rid}: half-written bar: bars_seen {run['bars_seen']}, "
                f"{run['points']} equity points, {run['bar_frames']} bar.received frames"
            )
        if run["frames"]:
            if run["seqs"] != run["frames"]:
                problems.append(f"{rid}: duplicate frame seq")
            if run["min_seq"] != 1 or run["max_seq"] != run["frames"]:
                problems.append(
                    f"{rid}: frame seq not contiguous: {run['frames']} frames, "
                    f"seq {run['min_seq']}..{run['max_seq']}"
                )
    return problems
