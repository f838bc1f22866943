"""Write the tutorial notebooks from their cell sources (outputs stripped).

Run ``python notebooks/build_notebooks.py`` after editing a cell here; the
``.ipynb`` files are what users open with ``jupyter lab notebooks/``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent


def md(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_markdown_cell(text.strip())


def code(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_code_cell(text.strip())


FIRST_SESSION = [
    md("""
# Your first paper trading session

The tutorial end to end from cells: author a bot, backtest it, pass the paper gate,
start a paper session that renders live below its cell, watch its frames, break a
risk limit on purpose, engage and reset the kill switch, and finish with the
tutorial's SQL and the same questions answered with pandas.

Everything lands in the default ledger (`~/.alphaswarm/ledger.db`, or
`ALPHASWARM_DB_URL`).
"""),
    code("""
import alphaswarm as aw

aw.extension()  # Panel, Tabulator and HoloViews' Bokeh, inline: works offline
ledger = aw.get_ledger()
ledger.url
"""),
    md("## 1. Author a bot\n\nFrom YAML (the same text `POST /bots` accepts) ..."),
    code("""
bot = aw.Bot.from_yaml('''
name: sma-demo
strategy: sma_cross
params: {fast: 3, slow: 10}
universe: [DEMO]
data: {feed: synthetic, seed: 7, interval: 1m}
risk: {max_order_notional: 50000, max_position_qty: 1000, max_drawdown_pct: 0.20,
       max_daily_loss: 5000, max_orders_per_minute: 30, kill_switch_attached: true}
''')
bot
"""),
    md("... or from Python. The same spec gives the same content hash."),
    code("""
same = aw.Bot(
    name="sma-demo", strategy="sma_cross", params={"fast": 3, "slow": 10},
    universe=["DEMO"], data={"feed": "synthetic", "seed": 7, "interval": "1m"},
    risk={"max_order_notional": 50000, "max_position_qty": 1000, "max_drawdown_pct": 0.20,
          "max_daily_loss": 5000, "max_orders_per_minute": 30, "kill_switch_attached": True},
)
same.spec_hash == bot.spec_hash
"""),
    md("## 2. Backtest it\n\nTwenty trading days of minute bars through the same engine a paper session uses."),
    code("""
result = aw.backtest(bot, bars=7800)
result
"""),
    code("result.plot()"),
    code("result.trades.tail()"),
    md("## 3. The paper gate\n\nA recent backtest of this bot version with Sharpe >= 0.5 and drawdown <= 20 %, the kill switch attached, and a feed that serves the universe."),
    code("""
gate = aw.check_gate(bot, ledger, bot.make_feed())
gate.status, gate.errors, gate.warnings
"""),
    md("## 4. Start a paper session\n\n`start()` returns at once; the session renders live below the cell (equity, fills, frames, positions, risk, and a stop button). `speed=600` replays ten minute-bars per second."),
    code("""
session = aw.PaperSession(bot, starting_cash=100_000, duration_minutes=120, speed=600)
fills_seen = []  # every event is a frame; a callback sees each one as it happens
session.frames.subscribe(lambda f: fills_seen.append(f) if f["stage"] == "order.filled" else None)
session.start()
"""),
    md("## 5. Watch its frames\n\nEach frame is `{task_id, stage, message, timestamp, seq, equity, positions, ...}`; they are also in the ledger, so a late reader can replay them."),
    code("""
session.wait(120)
session.status, session.num_fills, round(session.total_pnl, 2)
"""),
    code("session.frames_df.stage.value_counts()"),
    code("""
first_fill = session.frames_df.query("stage == 'order.filled'").frame.iloc[0]
first_fill["message"], first_fill["equity"], first_fill["positions"]
"""),
    md("## 6. Break a risk limit on purpose\n\nA bot with a one-dollar daily loss limit halts on its first losing bar: `risk.halted`, open orders cancelled, positions flattened, status `halted`."),
    code("""
fragile = aw.Bot(bot.spec | {"name": "fragile", "risk": {"max_daily_loss": 1, "kill_switch_attached": True}})
aw.backtest(fragile, bars=2000)
halted = aw.PaperSession(fragile, speed=0, duration_minutes=None, max_bars=5000,
                         force=True, reason="tutorial: demonstrate a risk halt").start()
halted.wait(60)
halted.status, halted.stop_reason
"""),
    code("""
frames = halted.frames_df
frames[frames.stage == "risk.halted"].frame.iloc[0]
"""),
    md("## 7. The kill switch\n\nOne call stops every running session at once (cancel open orders, write the final rows) and latches until reset."),
    code("""
running = [aw.PaperSession(bot, speed=60, duration_minutes=None).start() for _ in range(3)]
report = aw.kill_switch().engage("tutorial drill")
report["targets"], round(report["elapsed_ms"], 1), [s.status for s in running]
"""),
    code("""
try:
    aw.PaperSession(bot, speed=0).start()
except aw.KillSwitchEngaged as refused:
    print(refused)
aw.kill_switch().reset()
aw.kill_switch().engaged
"""),
    md("## 8. Inspect the ledger\n\nThe tutorial's two queries, verbatim:"),
    code("""
last_run = ledger.sql('''
SELECT id, bot_id, status, total_pnl, num_fills, started_at, ended_at
FROM paper_trading_runs ORDER BY started_at DESC LIMIT 1;
''')
last_run
"""),
    code("""
ledger.sql('''
SELECT order_id, symbol, side, qty, price, filled_at
FROM paper_fills
WHERE paper_run_id = :run_id
ORDER BY filled_at;
''', run_id=session.paper_run_id)
"""),
    md("The same questions with pandas:"),
    code("""
runs = ledger.runs()
runs.sort_values("started_at").tail(1)[["id", "bot_id", "status", "total_pnl", "num_fills", "started_at", "ended_at"]]
"""),
    code("ledger.fills(session.paper_run_id).sort_values('filled_at').head()"),
    md("### Verify\n\n- the session delivered at least one `order.filled` frame\n- its `paper_trading_runs` row has a non-NULL `total_pnl`\n- the kill switch closed the drill sessions"),
    code("""
assert len(fills_seen) >= 1
assert ledger.get_run(session.paper_run_id)["total_pnl"] is not None
assert {ledger.get_run(s.paper_run_id)["status"] for s in running} == {"killed"}
"""),
]

BACKTEST_RESEARCH = [
    md("""
# Backtest research

Compare strategies and parameters on real daily prices (the public-domain AAPL, MSFT,
IBM and GOOG series that `bokeh_sampledata` ships, 2000-2013) and on the synthetic
minute feed: a results table sorted by Sharpe, equity curves overlaid, drawdowns, and a
parameter grid with a progress bar and an overfitting report.
"""),
    code("""
import holoviews as hv
import pandas as pd
import alphaswarm as aw

aw.extension()  # Panel, Tabulator and HoloViews' Bokeh, inline: works offline
SYMBOLS = ["AAPL", "MSFT", "IBM", "GOOG"]
STRATEGIES = {
    "sma_cross": {"fast": 20, "slow": 100, "allocation": 0.95},
    "mean_reversion": {"window": 20, "entry_z": 2.0, "exit_z": 0.5, "allocation": 0.95},
    "buy_and_hold": {"allocation": 0.95},
}
"""),
    md("## Every strategy on every symbol"),
    code("""
def daily_bot(strategy, symbol):
    return aw.Bot(name=f"{strategy}-{symbol}", strategy=strategy, params=STRATEGIES[strategy],
                  universe=[symbol], data={"feed": "sample"}, risk={"kill_switch_attached": True})

results = {(s, sym): aw.backtest(daily_bot(s, sym), store=False) for s in STRATEGIES for sym in SYMBOLS}
table = pd.DataFrame([{"strategy": s, "symbol": sym, **r.metrics} for (s, sym), r in results.items()])
table.sort_values("sharpe", ascending=False).round(3)
"""),
    md("## Equity curves overlaid (AAPL)"),
    code("""
hv.Overlay([hv.Curve(results[(s, "AAPL")].equity.equity, label=s) for s in STRATEGIES]).opts(
    width=750, height=320, legend_position="top_left", title="AAPL, daily, $100k start"
)
"""),
    md("## Drawdowns"),
    code("""
hv.Overlay([hv.Area(results[(s, "AAPL")].equity.drawdown, label=s).opts(alpha=0.35) for s in STRATEGIES]).opts(
    width=750, height=250, title="drawdown from the running peak"
)
"""),
    md("## A parameter grid on the synthetic minute feed\n\nEvery trial is a full backtest; the sweep shows a progress bar, keeps its trials in the ledger (run it again and it resumes), and reports how likely the winner is luck (Deflated Sharpe Ratio, PBO)."),
    code("""
bot = aw.Bot(name="sma-grid", strategy="sma_cross", params={"fast": 10, "slow": 30},
             universe=["DEMO"], data={"feed": "synthetic", "seed": 7, "interval": "1m"},
             risk={"kill_switch_attached": True})
result = aw.sweep(bot, grid={"fast": [5, 10, 20], "slow": [30, 60, 120]}, bars=3900, backend="serial")
result.trials.sort_values("sharpe", ascending=False)[["fast", "slow", "sharpe", "max_drawdown", "total_return", "num_trades"]].head()
"""),
    code("result.report"),
    code("result.heatmap('fast', 'slow')"),
]

LEDGER_WITH_PANDAS = [
    md("""
# The ledger as data

Runs, fills, slippage and commission, P&L attribution per symbol and a frames
timeline: every question as a DataFrame and a plot. First we make some history:
a two-symbol bot with commission and slippage, paper traded at full speed.
"""),
    code("""
import holoviews as hv
import pandas as pd
import alphaswarm as aw

aw.extension()  # Panel, Tabulator and HoloViews' Bokeh, inline: works offline
ledger = aw.get_ledger()
bot = aw.Bot(
    name="pairs-demo", strategy="mean_reversion", params={"window": 30, "entry_z": 1.5, "exit_z": 0.2},
    universe=["AAA", "BBB"], data={"feed": "synthetic", "seed": 11, "interval": "1m"},
    broker={"slippage_bps": 2, "commission_per_share": 0.005, "commission_min": 1.0},
    risk={"max_position_pct": 0.5, "kill_switch_attached": True},
)
aw.backtest(bot, bars=3900)
session = aw.PaperSession(bot, speed=0, duration_minutes=None, max_bars=3900,
                          force=True, reason="ledger notebook history").start()
session.wait(120), session.status
"""),
    md("## Runs"),
    code("ledger.runs()[['id', 'bot_id', 'status', 'starting_cash', 'total_pnl', 'num_fills', 'bars_seen', 'started_at', 'ended_at']].tail()"),
    md("## Fills, slippage and commission"),
    code("""
fills = ledger.fills(session.paper_run_id)
costs = fills.groupby(["symbol", "side"]).agg(
    fills=("qty", "size"), qty=("qty", "sum"), commission=("commission", "sum"), slippage=("slippage", "sum")
)
costs
"""),
    code("""
fills["notional"] = fills.qty * fills.price
(fills.commission.sum() + fills.slippage.sum()) / fills.notional.sum() * 1e4  # cost in bps of traded value
"""),
    md("## P&L attribution per symbol\n\nFIFO round trips from the fills, net of commission."),
    code("""
from alphaswarm.metrics import round_trips

trips = round_trips(fills)
trips.groupby("symbol").pnl.agg(["count", "sum", "mean"])
"""),
    code("hv.Bars(trips.groupby('symbol').pnl.sum().reset_index(), 'symbol', 'pnl').opts(title='net P&L by symbol')"),
    md("## Equity and drawdown"),
    code("""
equity = ledger.equity(session.paper_run_id).set_index("ts")
equity["drawdown"] = equity.equity / equity.equity.cummax() - 1
(hv.Curve(equity.equity, label="equity") + hv.Area(equity.drawdown, label="drawdown")).cols(1)
"""),
    md("## Frames timeline"),
    code("""
frames = ledger.frames(session.paper_run_id)
timeline = frames[frames.stage != "bar.received"].groupby("stage").seq.count()
timeline
"""),
    code("""
frames["minute"] = pd.to_datetime([f.get("ts") for f in frames.frame], unit="s").floor("s")
hv.Scatter(frames[frames.stage.isin(["order.placed", "order.filled", "signal.emitted"])], "seq", "stage").opts(
    jitter=0.2, size=4, title="events by sequence number", width=700
)
"""),
    md("## Risk events and audit log"),
    code("ledger.risk_events(session.paper_run_id).head()"),
    code("ledger.audit_rows().tail()"),
]


SWEEPS = [
    md("""
# Parameter sweeps, walk-forward and the overfitting report

One call backtests a bot over a parameter grid on all local cores (a Dask
`LocalCluster`, one single-threaded worker process per core). The same call runs on
a cluster when given `client="tcp://scheduler:8786"`. Finished trials land in the
ledger, so running it again resumes; every sweep reports the Deflated Sharpe Ratio
of its winner and the Probability of Backtest Overfitting.
"""),
    code("""
import alphaswarm as aw
from alphaswarm.sweep import sweep, walk_forward, close_local_cluster

aw.extension()  # Panel, Tabulator and HoloViews' Bokeh, inline: works offline
"""),
    md("""
A small bot on daily synthetic bars of two symbols, and a grid of 16 combinations.
"""),
    code("""
bot = aw.Bot(
    name="sweep-demo", strategy="sma_cross", params={"fast": 10, "slow": 30},
    universe=["AAA", "BBB"], data={"feed": "synthetic", "seed": 11, "interval": "1d"},
)
grid = {"fast": [3, 5, 10, 20], "slow": [30, 50, 80, 120]}
"""),
    md("""
## 1. Run the sweep on two local worker processes
"""),
    code("""
res = sweep(bot, grid, bars=1000, n_workers=2, name="sweep-demo-grid")
res
"""),
    md("""
One row per trial: parameters, status and metrics (trades stay on the workers).
"""),
    code("""
res.trials.head()
"""),
    code("""
res.best_params, res.best['sharpe']
"""),
    md("""
## 2. Is the winner luck?

`dsr` is the probability that the winner's true Sharpe is above zero after
deflating for `n_trials` tries (0.95 is the usual bar); `pbo` is the share of
in-sample/out-of-sample splits in which the in-sample winner lands in the bottom
half out of sample.
"""),
    code("""
{k: res.report[k] for k in ("n_trials", "dsr", "psr", "pbo", "passes_gate")}
"""),
    md("""
## 3. Views
"""),
    code("""
res.heatmap("fast", "slow")
"""),
    md("""
First half of the bars against the second half, per trial: points far below the diagonal did not carry.
"""),
    code("""
res.scatter()
"""),
    md("""
## 4. Resume: the same name skips finished trials
"""),
    code("""
again = sweep(bot, grid, bars=1000, n_workers=2, name="sweep-demo-grid", progress=False)
again.progress.resumed, again.stats.trials
"""),
    md("""
## 5. Replay the winner locally with full trades and equity
"""),
    code("""
detail = res.rerun()
detail.trades.tail(3)
"""),
    code("""
detail.plot()
"""),
    md("""
## 6. Walk-forward

Rolling folds of 250 in-sample and 100 out-of-sample bars with a 5-bar gap; every
fold's best in-sample parameters trade its out-of-sample bars after a non-trading
warm-up.
"""),
    code("""
wf = walk_forward(bot, grid, train=250, test=100, gap=5, bars=1000, n_workers=2)
wf.folds[["fold", "fast", "slow", "is_sharpe", "oos_sharpe", "dsr", "pbo"]]
"""),
    code("""
wf.efficiency, wf.stability['slow']
"""),
    code("""
(wf.plot() + wf.scatter()).cols(1)
"""),
    md("""
## 7. Progress in a dashboard

`res.progress` is a Param object; `res.progress.panel()` is a Panel indicator bound
to it (run a sweep with `wait=False` to watch it move).
"""),
    code("""
res.progress.panel()
"""),
    md("""
## 8. On a cluster

Start `dask scheduler` on one machine and `dask worker tcp://host:8786` on each of
the others (see `docs/scaling.md`), then:

```python
res = sweep(bot, grid, bars=1000, client="tcp://host:8786")
```

The metrics are identical to the local run.
"""),
    code("""
close_local_cluster()
"""),
]


RECONCILE = [
    md("""
# Why does paper differ from my backtest? Reconciliation

`reconcile(run_id)` rebuilds exactly the bars a paper run saw (its `bar.received` frames
in the ledger), re-runs the bot's backtest over them with the same engine, and lines the
two up fill by fill. Every difference gets a cause the ledger can prove — risk denial,
halt or kill, partial fill, changed commission/slippage/intrabar rule, bars missing in the
feed, strategy non-determinism — and the summary splits the P&L gap by cause.
"""),
    code("""
import alphaswarm as aw
from alphaswarm.data import ReplayFeed
from alphaswarm.reconcile import reconcile

aw.extension()  # Panel, Tabulator and HoloViews' Bokeh, inline: works offline
"""),
    md("""
## A research bot, and the bot that paper trades

The research backtest had no costs. The paper bot pays a commission and may take at most 1.5 % of a bar's volume.
"""),
    code("""
research = aw.Bot(name="sma-research", strategy="sma_cross",
                  params={"fast": 10, "slow": 30, "qty": 500},
                  risk={"kill_switch_attached": True})
paper_bot = aw.Bot({**research.spec, "name": "sma-paper",
                    "broker": {"commission_per_share": 0.005, "max_participation": 0.015}})
"""),
    code("""
session = aw.PaperSession(paper_bot, speed=0, duration_minutes=None, max_bars=1500,
                          force=True, reason="reconciliation notebook").start()
session.wait()
print(session)
"""),
    md("""
## Same bars, same settings: nothing to explain

By default the backtest uses the spec, broker config and fill rule recorded with the run, so a replay reconciles to the cent.
"""),
    code("""
reconcile(session.paper_run_id).summary['differences']
"""),
    md("""
## Against the research backtest

Pass the bot your backtest used (or `bot="latest"` for the newest registered version).
"""),
    code("""
rec = reconcile(session.paper_run_id, bot=research)
print(rec)
"""),
    code("""
rec.summary['explained']
"""),
    code("""
cols = ["kind", "paper_time", "paper_qty", "backtest_qty", "pnl_effect", "cause", "reason"]
rec.differences[cols].head(6)
"""),
    md("""
The same view is the *Reconciliation* tab of a run in the dashboard, and `GET /paper/{id}/reconcile` returns it as JSON.
"""),
    code("""
rec
"""),
    md("""
## One order, explained

The signal behind it, the risk checks it passed with values and thresholds, and each fill.
"""),
    code("""
order_id = rec.differences.paper_order_id.dropna().iloc[0]
print(session.explain(order_id)["text"])
"""),
    md("""
## A bar the feed lost

Replay the research bot on data missing the bar its first order filled on, then reconcile against the full data with `bars=`.
"""),
    code("""
bars = research.make_feed().frame(limit=400)
first_fill = aw.backtest(research, bars=400, store=False).fills.filled_at.iloc[0]
holed = bars[bars.ts != first_fill]
lossy = aw.PaperSession(research, feed=ReplayFeed.from_frame(holed), speed=0,
                        duration_minutes=None, force=True, reason="lost bar").start()
lossy.wait()
"""),
    code("""
lost = reconcile(lossy.paper_run_id, bars=bars)
lost.differences[cols]
"""),
    code("""
lost.summary['bars']['missing'], lost.summary['bars']['time_gaps']
"""),
]


def write(name: str, cells: list[nbf.NotebookNode]) -> None:
    nb = nbf.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbf.write(nb, HERE / name)


if __name__ == "__main__":
    write("01-first-paper-session.ipynb", FIRST_SESSION)
    write("02-backtest-research.ipynb", BACKTEST_RESEARCH)
    write("03-ledger-with-pandas.ipynb", LEDGER_WITH_PANDAS)
    write("04-sweeps.ipynb", SWEEPS)
    write("05-reconcile.ipynb", RECONCILE)
