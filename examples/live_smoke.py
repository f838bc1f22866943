"""Five minutes of paper trading on live, public Binance bars through ccxt (needs internet).

    python examples/live_smoke.py [--exchange binance] [--symbol BTC/USDT] [--minutes 5]

Not part of CI: it is the manual check that a real exchange, a real websocket and a
real clock work end to end. It prints every frame (``feed.*`` frames included), the
feed state each minute, and the run summary; the bars it received are recorded to
``live_smoke.parquet``, which ``data: {feed: recording, path: live_smoke.parquet}``
replays to the same fills.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import alphaswarm as aw


def main() -> None:
    """Run the session and print what happens."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", default="binance")
    parser.add_argument("--symbol", default="BTC/USDT")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--record", default="live_smoke.parquet")
    args = parser.parse_args()

    aw.set_ledger(f"sqlite:///{tempfile.mkdtemp()}/live_smoke.db")
    bot = aw.Bot(
        {
            "name": "live-smoke",
            "strategy": "sma_cross",
            "params": {"fast": 2, "slow": 3, "qty": 0.001},
            "universe": [args.symbol],
            "data": {
                "feed": "ccxt",
                "exchange": args.exchange,
                "interval": "1m",
                "stall_seconds": 180,
                "record": args.record,
            },
            "risk": {"max_position_qty": 1, "kill_switch_attached": True},
        }
    )
    missing = bot.make_feed().covers(bot.universe)
    if missing:
        raise SystemExit(f"{args.exchange} does not list {', '.join(missing)}")
    # a smoke test, not a strategy review: the gate's backtest rule is forced
    session = aw.PaperSession(
        bot, duration_minutes=args.minutes, force=True, reason="live smoke test"
    )
    session.frames.subscribe(
        lambda f: print(f"{f['timestamp']} {f['stage']:<18} {f['message']}", flush=True)
    )
    session.start()
    while not session.wait(60):
        print("feed state:", session.feed_state, flush=True)
    print("result:", session.run)
    print(f"recorded to {args.record}")
    time.sleep(0.1)


if __name__ == "__main__":
    main()
