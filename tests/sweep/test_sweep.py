"""Sweeps in this process: metrics, keys, ledger, resume, progress, rerun, walk-forward."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

import alphaswarm as aw
from alphaswarm.ledger import Ledger
from alphaswarm.sweep import SweepResult, sweep
from alphaswarm.sweep.trials import expand_grid, sample_grid
from alphaswarm.sweep.walkforward import make_folds
from tests.sweep.helpers import (
    BARS,
    GRID,
    assert_same_metrics,
    serial_sweep,
    serial_walk_forward,
    small_bot,
)


def n_rows(ledger: Ledger, sweep_id: str) -> tuple[int, int]:
    with ledger.engine().connect() as conn:
        total = conn.execute(
            text("SELECT count(*) FROM sweep_trials WHERE sweep_id = :s"), {"s": sweep_id}
        ).scalar_one()
        distinct = conn.execute(
            text("SELECT count(DISTINCT trial_key) FROM sweep_trials WHERE sweep_id = :s"),
            {"s": sweep_id},
        ).scalar_one()
    return total, distinct


def test_grid_and_samples():
    combos = expand_grid(GRID)
    assert len(combos) == 12 and combos[0] == {"fast": 3, "slow": 20}
    drawn = sample_grid(GRID, 5, seed=1)
    assert len(drawn) == 5 and all(d in combos for d in drawn)
    assert drawn == sample_grid(GRID, 5, seed=1)
    assert len({tuple(d.values()) for d in drawn}) == 5
    assert sample_grid(GRID, 99) == combos


def test_trial_metrics_equal_backtest_and_rerun(led):
    bot = small_bot()
    res = serial_sweep(bot, GRID, ledger=led)
    assert isinstance(res, SweepResult) and res.status == "done"
    assert len(res.trials) == 12 and (res.trials["status"] == "done").all()
    row = res.trials.iloc[4]
    params = {"fast": int(row["fast"]), "slow": int(row["slow"])}
    bot2 = aw.Bot({**bot.spec, "params": {**bot.spec["params"], **params}})
    ref = aw.backtest(bot2, bars=BARS, store=False)
    for k, v in ref.metrics.items():
        assert row[k] == v, k
    again = res.rerun(row["trial_key"][:12])
    assert again.metrics == ref.metrics
    assert len(again.equity) == BARS and len(again.trades) == ref.metrics["num_trades"]
    best = res.best
    assert best["sharpe"] == res.trials["sharpe"].max()
    assert res.best_params == {"fast": int(best["fast"]), "slow": int(best["slow"])}
    rep = res.report
    assert rep["n_trials"] == 12 and 0 <= rep["dsr"] <= 1 and 0 <= rep["pbo"] <= 1
    assert rep["winner"] == best["trial_key"] and rep["days"] == BARS - 1


def test_keys_are_content_hashes(led):
    bot = small_bot()
    a = serial_sweep(
        bot,
        {"fast": [3, 5], "slow": [20]},
        ledger=False,
    )
    b = serial_sweep(bot, {"fast": [5], "slow": [20]}, ledger=False)
    assert b.trials["trial_key"].iloc[0] == a.trials["trial_key"].iloc[1]
    other_data = serial_sweep(
        small_bot(seed=4),
        {"fast": [5], "slow": [20]},
        ledger=False,
    )
    other_window = serial_sweep(
        bot,
        {"fast": [5], "slow": [20]},
        bars=BARS - 1,
        ledger=False,
    )
    other_fill = serial_sweep(
        aw.Bot({**bot.spec, "broker": {"intrabar_rule": "optimistic"}}),
        {"fast": [5], "slow": [20]},
        ledger=False,
    )
    keys = {r.trials["trial_key"].iloc[0] for r in (b, other_data, other_window, other_fill)}
    assert len(keys) == 4


def test_invalid_params_are_recorded_not_run(led):
    res = serial_sweep(
        small_bot(),
        {"fast": [5, 30], "slow": [20]},
        ledger=led,
    )
    bad = res.trials[res.trials["fast"] == 30].iloc[0]
    assert bad["status"] == "invalid" and "fast" in bad["error"]
    assert res.progress.failed == 1 and res.progress.finished == 2


def test_resume_by_name_skips_finished_trials(led):
    bot = small_bot()
    first = serial_sweep(
        bot,
        {"fast": [3, 5], "slow": [20, 30]},
        ledger=led,
        name="resume-me",
    )
    assert first.progress.resumed == 0
    second = serial_sweep(bot, GRID, ledger=led, name="resume-me")
    assert second.sweep_id == first.sweep_id
    assert second.progress.resumed == 4 and second.stats.trials == 8
    assert second.progress.finished == 12
    assert n_rows(led, second.sweep_id) == (12, 12)
    full = serial_sweep(bot, GRID, ledger=False)
    assert_same_metrics(second.trials, full.trials)
    # the default name is derived from the call: an identical call resumes
    again = serial_sweep(bot, GRID, ledger=led)
    again2 = serial_sweep(bot, GRID, ledger=led)
    assert again.name == again2.name and again2.progress.resumed == 12
    assert again2.stats.trials == 0


def test_cancel_halfway_then_resume_serial(led):
    bot = small_bot()
    res = serial_sweep(
        bot,
        GRID,
        ledger=led,
        name="cancel-serial",
        wait=False,
    )
    res.progress.param.watch(lambda e: res.cancel() if e.new >= 6 else None, "done")
    res.wait(60)
    assert res.status == "cancelled"
    kept = n_rows(led, res.sweep_id)[0]
    assert 6 <= kept < 12
    assert aw.get_ledger() is not led
    resumed = serial_sweep(bot, GRID, ledger=led, name="cancel-serial")
    assert resumed.status == "done" and resumed.progress.resumed == kept
    assert n_rows(led, resumed.sweep_id) == (12, 12)
    assert set(resumed.trials["trial_key"]) == set(
        serial_sweep(bot, GRID, ledger=False).trials["trial_key"]
    )


def test_progress_reaches_the_trial_count(led):
    seen = []
    res = sweep(
        small_bot(), GRID, bars=BARS, backend="serial", ledger=False, progress=True, wait=False
    )
    res.progress.param.watch(lambda e: seen.append(e.new), "done")
    res.wait(60)
    assert res.progress.done == 12 and res.progress.value == 100
    assert res.progress.status == "done" and "12/12" in res.progress.message


def test_family_n_counts_earlier_sweeps(led):
    bot = small_bot()
    serial_sweep(
        bot,
        {"fast": [3, 5], "slow": [20]},
        ledger=led,
        name="fam-1",
    )
    res = serial_sweep(
        bot,
        {"fast": [8, 12], "slow": [30]},
        ledger=led,
        name="fam-2",
    )
    assert res.report["n_sweep"] == 2 and res.report["n_trials"] == 4


def test_client_only_dataframe_feed(led):
    bot = small_bot()
    frame = bot.make_feed().frame(limit=BARS)
    a = sweep(bot, GRID, feed=frame, backend="serial", ledger=False, progress=False)
    b = serial_sweep(bot, GRID, ledger=False)
    assert a.trials["sharpe"].tolist() == b.trials["sharpe"].tolist()


def test_views_build():
    res = serial_sweep(
        small_bot(),
        {**GRID, "allocation": [0.2, 0.4]},
        ledger=False,
    )
    hm = res.heatmap("fast", "slow")
    assert hm.kdims[0].name == "allocation"
    assert len(res.scatter()) == 2
    assert len(res.halves()) == 24


def test_make_folds():
    assert make_folds(10, 4, 2, anchored=True) == [(0, 4, 4, 6), (0, 6, 6, 8), (0, 8, 8, 10)]
    assert make_folds(12, 4, 2, gap=2) == [(0, 4, 6, 8), (2, 6, 8, 10), (4, 8, 10, 12)]
    with pytest.raises(ValueError, match="do not fit"):
        make_folds(5, 4, 2)


def test_walk_forward_on_a_small_synthetic_feed(led):
    bot = small_bot()
    wf = serial_walk_forward(
        bot,
        {"fast": [3, 8], "slow": [20, 40]},
        train=200,
        test=100,
        gap=5,
        ledger=led,
    )
    folds = wf.folds
    assert list(folds["fold"]) == [0, 1, 2]
    assert (folds["oos_start"] > folds["is_end"]).all()
    assert len(wf.trials) == 3 * 4
    # each OOS run used the fold's best in-sample params
    for _, f in folds.iterrows():
        part = wf.trials[wf.trials["fold"] == f["fold"]]
        best = part.loc[part["sharpe"].idxmax()]
        assert (best["fast"], best["slow"]) == (f["fast"], f["slow"])
    # stitched OOS equity: 3 x 100 bars, continuous
    assert len(wf.equity) == 300 and wf.equity.index.is_monotonic_increasing
    assert wf.equity.iloc[0] == pytest.approx(100_000.0)
    assert set(wf.stability) == {"fast", "slow"}
    assert wf.efficiency == wf.efficiency or pd.isna(wf.efficiency)
    # the OOS trial's ledger metrics equal a full replay of it
    oos = wf.out_of_sample.trials.iloc[0]
    assert wf.out_of_sample.rerun(oos["trial_key"]).metrics["sharpe"] == oos["sharpe"]
    # the warm-up trades nothing: the OOS curve starts at the starting cash
    assert wf.scatter() is not None
    anchored = serial_walk_forward(
        bot,
        {"fast": [3, 8], "slow": [20]},
        train=200,
        test=100,
        anchored=True,
        ledger=False,
    )
    assert (anchored.folds["is_start"] == anchored.folds["is_start"].iloc[0]).all()


def test_ledger_resume_on_both_backends(ledger_url):
    """The sweep ledger on SQLite and on a real PostgreSQL: batches, resume, no duplicates."""
    bot = small_bot()
    with Ledger(url=ledger_url) as ledger:
        first = serial_sweep(
            bot,
            {"fast": [3, 5], "slow": [20]},
            ledger=ledger,
            name="pg-resume",
        )
        second = serial_sweep(bot, GRID, ledger=ledger, name="pg-resume")
        assert second.progress.resumed == 2 and second.stats.trials == 10
        assert n_rows(ledger, first.sweep_id) == (12, 12)
        assert second.report["n_trials"] == 12


def test_progress_views_show_the_dashboard_link(monkeypatch, capsys):
    import tqdm.auto
    import tqdm.notebook
    import tqdm.std

    from alphaswarm.sweep.progress import SweepProgress

    link = "http://127.0.0.1:8787/status"
    p = SweepProgress(dashboard=link)
    panel = p.panel()
    assert panel.link.visible and panel.link.object == f"[Dask dashboard]({link})"
    assert f'href="{link}"' in p.link_widget().value
    assert SweepProgress().link_widget() is None
    # in a notebook (tqdm.auto picks the widget bar) the link is displayed above the bar
    shown = []
    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm.notebook.tqdm)
    monkeypatch.setattr(SweepProgress, "_show_link", lambda self: shown.append(self.link_widget()))
    bar = SweepProgress(bar=True, desc="demo", dashboard=link)
    bar.start(2)
    bar.update(done=2)
    bar.close("done")
    assert len(shown) == 1 and link in shown[0].value
    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm.std.tqdm)
    terminal = SweepProgress(bar=True, desc="demo", dashboard=link)
    terminal.start(1)
    terminal.close("done")
    assert len(shown) == 1  # a terminal bar: no widget
    capsys.readouterr()
