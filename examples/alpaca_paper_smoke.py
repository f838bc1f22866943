"""Orders to a real Alpaca paper account (needs internet and paper keys; not part of CI).

    export ALPACA_API_KEY=... ALPACA_SECRET_KEY=...   # paper keys
    python examples/alpaca_paper_smoke.py [--symbol AAPL] [--qty 1] [--session-minutes 0]

It checks the broker adapter end to end against Alpaca's paper endpoint: it reads the
account and what is open back (reconcile), places one limit order far below the market
(it cannot fill), watches it become ``accepted`` on the ``trade_updates`` stream,
replaces it, cancels everything with the kill switch's ``cancel_all`` and prints the
time until Alpaca confirmed each cancel. Orders only go out while the market is open
(the NYSE calendar); outside those hours the order is refused with ``market_closed``.

With ``--session-minutes N`` it then runs an N-minute paper session of a small
``sma_cross`` bot whose spec says ``broker: {kind: alpaca_paper}`` on Alpaca's IEX
minute bars, and prints the frames (market orders: they fill at Alpaca's prices).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import alphaswarm as aw
from alphaswarm.broker.alpaca import AlpacaPaperBroker
from alphaswarm.model import OrderRequest, OrderType, Side


def wait_for_updates(broker: AlpacaPaperBroker, seconds: float) -> None:
    """Print the order updates of the next ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for update in broker.poll_updates():
            print(f"  update: {update.kind.value:<16} {update.order.id} {update.reason}")
        time.sleep(0.1)


def broker_check(symbol: str, qty: float) -> None:
    """Reconcile, place, replace and cancel one order; print what Alpaca answers."""
    broker = AlpacaPaperBroker(f"smoke{int(time.time())}-")
    try:
        report = broker.reconcile()
        print(f"account: {broker.account()}")
        print(f"open orders not ours: {len(report.foreign)}; positions: {report.positions}")
        order = broker.submit(OrderRequest(symbol, Side.BUY, qty, OrderType.LIMIT, limit_price=1.0))
        print(f"submitted {order.id} -> {order.status.value} {order.reason}")
        print(f"  alpaca order id {broker.broker_order_id(order.id)}")
        wait_for_updates(broker, 3)
        if order.is_open:
            broker.replace(order.id, limit_price=1.01)
            print(f"replaced -> alpaca order id {broker.broker_order_id(order.id)}")
            wait_for_updates(broker, 3)
        for c in broker.cancel_all("smoke test"):
            print(f"cancel {c.order_id or c.broker_order_id}: confirmed={c.confirmed} "
                  f"status={c.status} after {c.seconds * 1e3:.0f} ms {c.detail}")  # fmt: skip
    finally:
        broker.close()


def session_check(symbol: str, qty: float, minutes: float) -> None:
    """A short paper session trading through the Alpaca paper account."""
    aw.set_ledger(f"sqlite:///{tempfile.mkdtemp()}/alpaca_smoke.db")
    bot = aw.Bot(
        {
            "name": "alpaca-paper-smoke",
            "strategy": "sma_cross",
            "params": {"fast": 2, "slow": 3, "qty": qty},
            "universe": [symbol],
            "data": {"feed": "alpaca", "interval": "1m", "source": "iex"},
            "broker": {"kind": "alpaca_paper"},
            "risk": {
                "max_order_notional": 5_000,
                "max_position_qty": 10 * qty,
                "max_drawdown_pct": 0.5,
                "max_daily_loss": 1_000,
                "max_orders_per_minute": 5,
                "kill_switch_attached": True,
            },
        }
    )
    # a smoke test, not a strategy review: the gate's backtest rule is forced
    session = aw.PaperSession(
        bot, duration_minutes=minutes, force=True, reason="alpaca paper smoke test"
    )
    session.frames.subscribe(lambda f: print(f"{f['stage']:<16} {f['message']}", flush=True))
    session.start()
    while not session.wait(60):
        print("open orders:", [o.id for o in session._engine.broker.open_orders], flush=True)
    print(f"session {session.paper_run_id}: {session.status}")


def main() -> None:
    """Run the checks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default="AAPL")
    parser.add_argument("--qty", type=float, default=1)
    parser.add_argument("--session-minutes", type=float, default=0)
    args = parser.parse_args()
    broker_check(args.symbol, args.qty)
    if args.session_minutes > 0:
        session_check(args.symbol, args.qty, args.session_minutes)


if __name__ == "__main__":
    main()
