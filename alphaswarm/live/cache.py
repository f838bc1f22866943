"""Historical bars of live providers, cached as Parquet under ``$ALPHASWARM_HOME/data``.

One file per (provider, source, interval, symbol) plus a small JSON sidecar that
records the time range the file covers. A request inside that range reads only
the file; a request beyond it downloads only the missing head and tail.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphaswarm.data.base import Block, FeedError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["BarCache", "data_home", "history_blocks"]

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def data_home() -> Path:
    """``$ALPHASWARM_HOME/data`` (``~/.alphaswarm/data`` by default)."""
    root = os.environ.get("ALPHASWARM_HOME") or "~/.alphaswarm"
    return Path(root).expanduser() / "data"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def empty_bars() -> pd.DataFrame:
    """An empty bar frame (``ts`` int64 epoch ns, float prices)."""
    return pd.DataFrame({c: np.empty(0, np.int64 if c == "ts" else float) for c in COLUMNS})


class BarCache:
    """Parquet cache of one provider's historical bars.

    Parameters
    ----------
    provider : str
        ``alpaca`` or ``ccxt``.
    source : str
        The provider's sub-source (``iex``, ``sip``, an exchange id ...).
    interval : str
        Bar interval.
    root : Path, optional
        Cache root (default :func:`data_home`).
    """

    def __init__(self, provider: str, source: str, interval: str, root: Path | None = None) -> None:
        self.dir = (root or data_home()) / _safe(provider) / _safe(source) / _safe(interval)

    def _paths(self, symbol: str) -> tuple[Path, Path]:
        stem = self.dir / _safe(symbol)
        return stem.with_suffix(".parquet"), stem.with_suffix(".json")

    def read(self, symbol: str) -> tuple[pd.DataFrame, int, int] | None:
        """The cached bars of ``symbol`` and the covered ``(from_ns, to_ns)``, or None."""
        data, meta = self._paths(symbol)
        if not data.exists() or not meta.exists():
            return None
        try:
            cover = json.loads(meta.read_text())
            frame = pd.read_parquet(data)
        except (OSError, ValueError) as exc:
            raise FeedError(f"{data}: unreadable cache file ({exc}); delete it") from exc
        return frame, int(cover["from_ns"]), int(cover["to_ns"])

    def write(self, symbol: str, frame: pd.DataFrame, from_ns: int, to_ns: int) -> None:
        """Replace the cached bars of ``symbol`` (atomically) and their covered range."""
        self.dir.mkdir(parents=True, exist_ok=True)
        data, meta = self._paths(symbol)
        tmp = data.with_suffix(".parquet.tmp")
        frame.reset_index(drop=True).to_parquet(tmp, index=False)
        tmp.replace(data)
        meta.write_text(json.dumps({"from_ns": from_ns, "to_ns": to_ns, "written": time.time()}))

    def get(
        self, symbol: str, from_ns: int, to_ns: int, download: Callable[[int, int], pd.DataFrame]
    ) -> pd.DataFrame:
        """Bars of ``symbol`` with ``from_ns <= ts <= to_ns``, downloading what is missing.

        Parameters
        ----------
        symbol : str
            The symbol.
        from_ns, to_ns : int
            Inclusive bounds, epoch nanoseconds.
        download : callable
            ``download(from_ns, to_ns) -> DataFrame`` with :data:`COLUMNS`.
        """
        cached = self.read(symbol)
        if cached is None:
            frame, lo, hi = download(from_ns, to_ns), from_ns, to_ns
        else:
            frame, lo, hi = cached
            pieces = [frame]
            if from_ns < lo:
                pieces.append(download(from_ns, lo - 1))
            if to_ns > hi:
                pieces.append(download(hi + 1, to_ns))
            if len(pieces) > 1:
                frame = pd.concat(pieces, ignore_index=True)
            lo, hi = min(lo, from_ns), max(hi, to_ns)
        if cached is None or (lo, hi) != cached[1:]:
            frame = (
                frame.astype({"ts": np.int64})
                .drop_duplicates("ts", keep="last")
                .sort_values("ts", kind="stable")
            )
            self.write(symbol, frame, lo, hi)
        ts = frame["ts"].to_numpy()
        return frame[(ts >= from_ns) & (ts <= to_ns)]


def history_blocks(
    symbols: list[str],
    cache: BarCache,
    download: Callable[[str, int, int], pd.DataFrame],
    start: int | None,
    end: int | None,
    interval_seconds: int,
    lookback: Any,
) -> Iterator[Block]:
    """Yield one block of the cached (or downloaded) historical bars of ``symbols``.

    ``end`` defaults to the start of the last *closed* bar; ``start`` to ``end``
    minus ``lookback`` (a :class:`pandas.Timedelta`-like).
    """
    step = interval_seconds * 10**9
    last_closed = (time.time_ns() // step - 1) * step
    hi = last_closed if end is None else min(end, last_closed)
    lo = int(hi - pd.Timedelta(lookback).value) if start is None else start
    if lo > hi:
        return
    parts = []
    for symbol in symbols:
        frame = cache.get(symbol, lo, hi, lambda a, b, s=symbol: download(s, a, b))
        parts.append(frame.assign(symbol=symbol))
    frame = pd.concat(parts, ignore_index=True) if parts else empty_bars().assign(symbol="")
    frame = frame.sort_values(["ts", "symbol"], kind="stable")
    if frame.empty:
        return
    yield Block(
        frame["ts"].to_numpy(np.int64),
        frame["symbol"].to_numpy(object),
        *(frame[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")),
    )
