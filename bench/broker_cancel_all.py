"""Cancel-all through the Alpaca paper adapter, against the loopback Alpaca server.

``python bench/broker_cancel_all.py [--orders N] [--cancel-delay SECONDS]`` places N
limit orders that cannot fill, calls ``cancel_all`` (what the kill switch calls)
and prints, per order, the seconds until the broker's confirmation, then the
median and the slowest. The loopback confirms after ``--cancel-delay`` seconds
(``pending_cancel`` first), so the figure is the adapter's own overhead on top of it.
Run from the repository root (it uses the test server in ``tests/broker``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.broker.alpaca_server import API_KEY, SECRET_KEY, AlpacaTradingServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--cancel-delay", type=float, default=0.0)
    args = parser.parse_args()
    os.environ.setdefault("ALPACA_API_KEY", API_KEY)
    os.environ.setdefault("ALPACA_SECRET_KEY", SECRET_KEY)
    from alphaswarm.broker.alpaca import AlpacaPaperBroker
    from alphaswarm.model import OrderRequest, OrderType, Side

    server = AlpacaTradingServer().start()
    server.cancel_delay = args.cancel_delay
    broker = AlpacaPaperBroker("bench-", urls=server.urls, calendar="24x7")
    try:
        for i in range(args.orders):
            broker.submit(OrderRequest(f"S{i}", Side.BUY, 1, OrderType.LIMIT, limit_price=1.0))
        start = time.perf_counter()
        confirmations = broker.cancel_all("bench")
        total = time.perf_counter() - start
    finally:
        broker.close()
        server.stop()
    seconds = sorted(c.seconds for c in confirmations)
    confirmed = sum(c.confirmed for c in confirmations)
    print(f"orders {len(confirmations)}  confirmed {confirmed}  cancel delay {args.cancel_delay}s")
    print(
        f"per-order confirmation: median {statistics.median(seconds) * 1e3:.1f} ms, "
        f"slowest {seconds[-1] * 1e3:.1f} ms; cancel_all returned after {total * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
