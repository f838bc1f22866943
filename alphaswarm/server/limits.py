"""The bounds the HTTP handlers enforce; ``/openapi.json`` states the same numbers."""

from __future__ import annotations

from alphaswarm.bot_schema import MAX_NAME

#: Most bars one backtest request may ask for.
MAX_BACKTEST_BARS = 2_000_000
#: Longest text accepted for ``reason`` fields.
MAX_REASON = 1000
#: Largest ``?limit=`` of list routes.
MAX_LIST_LIMIT = 100_000
#: Largest ``starting_cash``.
MAX_CASH = 1e15
#: Longest ``duration_minutes`` of a paper session (ten years).
MAX_DURATION_MINUTES = 10 * 365 * 1440
#: Highest ``speed`` of a paper session.
MAX_SPEED = 1e6
#: Most ``max_bars`` of a paper session.
MAX_SESSION_BARS = 10**9
#: Longest kill-switch ``ttl_seconds`` (a year).
MAX_TTL_SECONDS = 365 * 86400
#: Longest ``run_name``.
MAX_RUN_NAME = 200
#: Longest bot id in ``{"bot": id}``.
MAX_BOT_ID = 200
#: Longest ``mode`` text.
MAX_MODE = 40
#: Largest WebSocket ``?since=`` (frame sequence numbers are 63-bit integers).
MAX_SINCE = 2**63 - 1
#: Longest bot name.
MAX_BOT_NAME = MAX_NAME
