"""Replay recorded bars from a CSV file, a Parquet file or a pandas DataFrame.

The data are validated once, as whole columns, when the feed is built; every
problem raises :class:`~alphaswarm.data.base.FeedError` naming the source, the
column and the first offending row.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphaswarm.data.base import DAY, Block, Feed, FeedError, format_interval

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = ["ReplayFeed"]

TIME_COLUMNS = ("ts", "timestamp", "datetime", "date", "time")
SYMBOL_COLUMNS = ("symbol", "ticker")
PRICE_COLUMNS = ("open", "high", "low", "close")


class ReplayFeed(Feed):
    """Bars recorded elsewhere, replayed in time order.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format (a time column -- ``ts``, ``timestamp``, ``datetime``, ``date``
        or ``time`` -- plus ``symbol`` or ``ticker``) or a single-symbol frame with
        ``symbol=``. A DatetimeIndex serves as the time column when there is none.
        Column names are case-insensitive; ``open``, ``high``, ``low``, ``close`` are
        required, ``volume`` is optional (0 when absent); other columns are ignored.
        Naive timestamps are taken as UTC; numbers as epoch seconds.
    symbol : str, optional
        Symbol of a single-symbol frame; with a symbol column, keeps only that symbol.
    interval : str, optional
        Bar interval; inferred from the median spacing of timestamps when omitted.
    calendar : str, optional
        ``"equities"`` or ``"24x7"``; inferred (``24x7`` if any bar falls on a
        weekend) when omitted.
    source : str
        Name of the data in error messages (the file path for the ``from_*`` helpers).

    Raises
    ------
    FeedError
        When a column is missing, a value is not a positive finite price, a volume is
        negative, high/low do not contain open/close, a (symbol, ts) pair repeats, or
        a timestamp cannot be parsed.
    """

    kind = "replay"
    supports_arrays = True

    def __init__(
        self,
        data: pd.DataFrame,
        *,
        symbol: str | None = None,
        interval: str | None = None,
        calendar: str | None = None,
        source: str = "DataFrame",
    ) -> None:
        self.source = source
        block = _validate(data, symbol=symbol, source=source)
        self._data = block
        self._starts = np.concatenate(
            (np.flatnonzero(block.ts[1:] != block.ts[:-1]) + 1, [len(block)])
        )
        symbols = sorted(set(block.symbol.tolist()))
        if interval is None:
            interval = _infer_interval(block.ts)
        if calendar is None:
            weekday = (block.ts // (DAY * 10**9) + 3) % 7  # 1970-01-01 was a Thursday
            calendar = "24x7" if bool(np.any(weekday >= 5)) else "equities"
        super().__init__(symbols, interval, calendar)
        self._fingerprint: str | None = None

    # -- constructors ----------------------------------------------------------------

    @classmethod
    def from_frame(cls, data: pd.DataFrame, **kwargs: Any) -> ReplayFeed:
        """Build a feed from a DataFrame (see :class:`ReplayFeed` for the keywords)."""
        return cls(data, **kwargs)

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: Any) -> ReplayFeed:
        """Build a feed from a CSV file with a header row.

        Parameters
        ----------
        path : str or Path
            The file.
        **kwargs
            ``symbol``, ``interval``, ``calendar`` as for :class:`ReplayFeed`.
        """
        path = Path(path)
        frame = _read_table(path, "CSV", pd.read_csv, (ValueError, OSError, UnicodeDecodeError))
        return cls(frame, source=str(path), **kwargs)

    @classmethod
    def from_parquet(cls, path: str | Path, **kwargs: Any) -> ReplayFeed:
        """Build a feed from a Parquet file (needs pyarrow); arguments as for :meth:`from_csv`."""
        path = Path(path)
        frame = _read_table(path, "Parquet", _read_parquet, (ValueError, OSError))
        return cls(frame, source=str(path), **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ReplayFeed:
        """Build a feed from a ``.csv`` (optionally compressed) or ``.parquet`` file."""
        name = str(path).lower()
        if name.endswith((".parquet", ".pq")):
            return cls.from_parquet(path, **kwargs)
        if name.endswith((".csv", ".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz")):
            return cls.from_csv(path, **kwargs)
        raise FeedError(f"{path}: unknown file type; use .csv or .parquet")

    # -- feed interface --------------------------------------------------------------

    def select(self, symbols: Iterable[str]) -> ReplayFeed:
        """Return a feed restricted to ``symbols``.

        Raises
        ------
        FeedError
            If some of them are not in the data (the message lists the available ones).
        """
        symbols = list(symbols)
        missing = self.covers(symbols)
        if missing:
            raise FeedError(
                f"{self.source}: no data for {', '.join(missing)}; "
                f"available: {', '.join(self.symbols)}"
            )
        mask = np.isin(self._data.symbol, np.array(symbols, dtype=object))
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._data = self._data.take(mask)
        ts = new._data.ts
        new._starts = np.concatenate((np.flatnonzero(ts[1:] != ts[:-1]) + 1, [len(ts)]))
        new.symbols = sorted(set(symbols))
        new._fingerprint = None
        return new

    def _blocks(self, start: int | None, end: int | None) -> Iterator[Block]:
        ts = self._data.ts
        a = 0 if start is None else int(np.searchsorted(ts, start, "left"))
        b = len(ts) if end is None else int(np.searchsorted(ts, end, "right"))
        if a < b:
            yield self._data.take(slice(a, b))

    def __len__(self) -> int:
        """Number of bars (rows), all symbols together."""
        return len(self._data)

    def fingerprint(self) -> str:
        """Hash of the validated content (identical data in CSV and Parquet agree)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"{self.interval}|{self.calendar}|".encode())
            h.update("\x1f".join(self._data.symbol.tolist()).encode())
            for col in ("ts", "open", "high", "low", "close", "volume"):
                h.update(np.ascontiguousarray(getattr(self._data, col)).tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


# -- validation ----------------------------------------------------------------------


#: Above this many bars the interval is inferred from evenly spread adjacent pairs.
_INFER_SAMPLE = 65_536


def _infer_interval(ts: np.ndarray) -> str:
    """The median spacing of distinct timestamps, as an interval string.

    ``ts`` is sorted, so the spacings of the distinct timestamps are the positive
    differences of neighbours. Past ``_INFER_SAMPLE`` bars the median is taken over
    that many neighbour pairs spread evenly through the data (a pre-pass that costs
    a few milliseconds at any size); when the sample holds no positive spacing
    (many symbols per timestamp) every pair is used.
    """
    spacing = _positive_spacing(ts, _sample_positions(len(ts)))
    if not len(spacing):
        spacing = _positive_spacing(ts, None)
    if not len(spacing):
        return "1d"
    seconds = int(np.median(spacing) // 10**9)
    if seconds <= 0:
        return "1s"
    if seconds >= DAY:
        seconds = DAY * max(1, round(seconds / DAY))
    return format_interval(seconds)


def _sample_positions(n: int) -> np.ndarray | None:
    """Left indices of the neighbour pairs to measure (None: every pair)."""
    if n <= _INFER_SAMPLE:
        return None
    return np.unique(np.linspace(0, n - 2, _INFER_SAMPLE).astype(np.intp))


def _positive_spacing(ts: np.ndarray, left: np.ndarray | None) -> np.ndarray:
    gaps = np.diff(ts) if left is None else ts[left + 1] - ts[left]
    return gaps[gaps > 0]


def _row(frame: pd.DataFrame, pos: int) -> str:
    label = frame.index[pos]
    return f"row {pos}" if label == pos else f"row {pos} (index {label!r})"


def _read_table(
    path: Path,
    kind: str,
    read: Callable[[Path], pd.DataFrame],
    errors: tuple[type[Exception], ...],
) -> pd.DataFrame:
    """The table in ``path`` as ``read`` reads it; a :class:`FeedError` naming the file."""
    if not path.exists():
        raise FeedError(f"{path}: no such file")
    try:
        return read(path)
    except FeedError:
        raise
    except errors as exc:
        raise FeedError(f"{path}: cannot read as {kind}: {exc}") from exc


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise FeedError(f"{path}: reading Parquet needs pyarrow: {exc}") from exc


def _validate(data: Any, *, symbol: str | None, source: str) -> Block:
    if not isinstance(data, pd.DataFrame):
        raise FeedError(f"{source}: expected a pandas DataFrame, got {type(data).__name__}")
    frame = data
    names = [str(c).strip().lower() for c in frame.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FeedError(f"{source}: duplicated columns (case-insensitive): {', '.join(dupes)}")
    cols = dict(zip(names, frame.columns, strict=True))
    time_col = next((c for c in TIME_COLUMNS if c in cols), None)
    sym_col = next((c for c in SYMBOL_COLUMNS if c in cols), None)
    missing = [c for c in PRICE_COLUMNS if c not in cols]
    if time_col is None and not isinstance(frame.index, pd.DatetimeIndex):
        missing.insert(0, "ts (or timestamp/datetime/date/time)")
    if sym_col is None and symbol is None:
        missing.append("symbol (or pass symbol=)")
    if missing:
        raise FeedError(
            f"{source}: missing column(s): {', '.join(missing)}; found: "
            f"{', '.join(map(str, frame.columns)) or 'none'}"
        )
    if symbol is not None and (not isinstance(symbol, str) or not symbol.strip()):
        raise FeedError(f"symbol: expected a non-empty string, got {symbol!r}")
    if len(frame) == 0:
        raise FeedError(f"{source}: no rows")

    # symbols: validated per distinct value (a million-row frame has a handful)
    if sym_col is not None:
        raw = frame[cols[sym_col]]
        codes, names = _symbol_codes(raw, source, cols[sym_col], frame)
        if symbol is not None:
            if symbol not in names:
                available = ", ".join(sorted(names))
                raise FeedError(f"{source}: no rows for symbol {symbol!r}; available: {available}")
            keep = codes == names.index(symbol)
            frame, codes = frame.loc[keep], np.zeros(int(keep.sum()), np.intp)
            names = [symbol]
    else:
        codes, names = np.zeros(len(frame), np.intp), [symbol]

    ts = _timestamps(frame, cols.get(time_col) if time_col else None, source)

    values: dict[str, np.ndarray] = {}
    for name in (*PRICE_COLUMNS, "volume"):
        if name == "volume" and name not in cols:
            values[name] = np.zeros(len(frame))
            continue
        values[name] = _numeric(frame, cols[name], source, volume=name == "volume")
    o, h, lo, c = (values[n] for n in PRICE_COLUMNS)
    bad = (h < np.maximum(o, c)) | (lo > np.minimum(o, c))
    if bad.any():
        pos = int(np.argmax(bad))
        raise FeedError(
            f"{source}: {_row(frame, pos)} ({names[codes[pos]]}): high/low [{lo[pos]}, {h[pos]}] "
            f"do not contain open {o[pos]} and close {c[pos]}"
        )

    # rank of each symbol in sorted order: rows sort by (ts, symbol)
    ranked = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), np.intp)
    rank[ranked] = np.arange(len(names))
    key = rank[codes]
    later = ts[1:] > ts[:-1]
    if len(names) > 1:
        later |= (ts[1:] == ts[:-1]) & (key[1:] > key[:-1])
    if bool(later.all()):  # already in (ts, symbol) order, hence no duplicates
        order = None
        ts_sorted, key_sorted = ts, key
    else:
        order = np.lexsort((key, ts))
        ts_sorted, key_sorted = ts[order], key[order]
        dup = (ts_sorted[1:] == ts_sorted[:-1]) & (key_sorted[1:] == key_sorted[:-1])
        if dup.any():
            j = int(np.argmax(dup))
            first, second = sorted((int(order[j]), int(order[j + 1])))
            when = pd.Timestamp(int(ts_sorted[j]), tz="UTC").isoformat()
            raise FeedError(
                f"{source}: duplicate bar for ({names[ranked[key_sorted[j]]]}, {when}) at "
                f"{_row(frame, first)} and {_row(frame, second)}"
            )
    by_rank = np.array([names[i] for i in ranked], dtype=object)
    columns = [
        values[n] if order is None else np.ascontiguousarray(values[n][order])
        for n in (*PRICE_COLUMNS, "volume")
    ]
    return Block(np.array(ts_sorted, copy=order is None), by_rank[key_sorted], *columns)


def _symbol_codes(
    raw: pd.Series, source: str, column: Any, frame: pd.DataFrame
) -> tuple[np.ndarray, list[str]]:
    """Integer code of each row's symbol and the symbol of each code (as ``str``).

    Raises
    ------
    FeedError
        Naming the first row whose symbol is not a non-empty string.
    """
    try:
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts, ...): flag row by row
        codes, uniques = None, []
    valid = [isinstance(u, str) and bool(u.strip()) for u in uniques]
    if codes is None:
        # factorize only fails on unhashable values, none of which is a symbol: this raises
        bad = ~raw.map(lambda s: isinstance(s, str) and bool(s.strip())).to_numpy(bool)
    else:
        codes = np.asarray(codes, dtype=np.intp)
        ok = np.array([*valid, False], dtype=bool)  # code -1 (missing) -> the last slot
        bad = ~ok[codes]
    if bad.any():
        pos = int(np.argmax(bad))
        raise FeedError(
            f"{source}: column {column!r}, {_row(frame, pos)}: expected a "
            f"non-empty symbol string, got {raw.iloc[pos]!r}"
        )
    return codes, [str(u) for u in uniques]


def _parse_text_stamps(raw: pd.Series) -> pd.Series:
    """Timestamps of an object column as UTC datetimes; NaT where a value is not one.

    All-text ISO 8601 (what CSV exports and ``DataFrame.to_csv`` write) takes pandas'
    vectorised parser: about 0.15 s for a million rows where the per-value
    ``format="mixed"`` parser, kept for any other spelling, takes 0.8 s. An
    all-number column counts epoch seconds, as a numeric column does; a number among
    text or datetimes is not a timestamp (NaT), so its row is reported.
    """
    kind = pd.api.types.infer_dtype(raw, skipna=False)
    if kind in ("integer", "floating", "mixed-integer-float"):
        return pd.to_datetime(raw.astype("float64"), unit="s", utc=True, errors="coerce")
    if kind == "string":
        fast = _arrow_stamps(raw)
        if fast is not None:
            return fast
        try:
            return pd.to_datetime(raw, utc=True, format="ISO8601")
        except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
            pass
    else:
        raw = raw.where(raw.map(_may_be_a_stamp, na_action="ignore").fillna(False).astype(bool))
    return pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")


#: Rows from which :func:`_arrow_stamps` is tried (importing pyarrow costs more below).
ARROW_MIN_ROWS = 50_000
#: The spellings pyarrow parses, strictly: what ``DataFrame.to_csv`` writes for UTC bars.
_ARROW_FORMATS = ("%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%z")


def _arrow_stamps(raw: pd.Series) -> pd.Series | None:
    """Whole-second text stamps with a zone, parsed by pyarrow when installed; else None.

    About five times faster than pandas' ISO 8601 parser on a million rows; a value
    in any other spelling makes it give up (None), and the caller's parser decides.
    """
    if len(raw) < ARROW_MIN_ROWS:
        return None
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        return None
    failed = (pa.ArrowException, ValueError, TypeError, UnicodeError)
    try:
        values = pa.array(raw, type=pa.string())
    except failed:  # text pyarrow cannot hold (a lone surrogate ...)
        return None
    for spelling in _ARROW_FORMATS:
        try:
            parsed = pc.strptime(values, format=spelling, unit="s")
        except failed:
            continue
        return pd.Series(parsed.to_pandas(), index=raw.index, name=raw.name)
    return None


def _may_be_a_stamp(value: Any) -> bool:
    """Text, a date or a datetime: what the per-value parser is given (numbers are not)."""
    return isinstance(value, str | date | np.datetime64)


def _timestamps(frame: pd.DataFrame, column: Any, source: str) -> np.ndarray:
    """Parse the time column (or DatetimeIndex) to int64 epoch ns, UTC."""
    where = f"column {column!r}" if column is not None else "the index"
    raw = frame.index.to_series(index=range(len(frame))) if column is None else frame[column]
    try:
        if pd.api.types.is_bool_dtype(raw):
            raise TypeError("booleans are not timestamps")
        if pd.api.types.is_numeric_dtype(raw):
            parsed = pd.to_datetime(raw.astype("float64"), unit="s", utc=True, errors="coerce")
        elif isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw):
            parsed = pd.to_datetime(raw, utc=True)
        else:
            parsed = _parse_text_stamps(raw)
        parsed = parsed.reset_index(drop=True)
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise FeedError(f"{source}: {where}: cannot parse timestamps: {exc}") from None
    bad = parsed.isna().to_numpy()
    if bad.any():
        pos = int(np.argmax(bad))
        raise FeedError(
            f"{source}: {where}, {_row(frame, pos)}: {raw.iloc[pos]!r} is not a timestamp"
        )
    try:
        return np.asarray(
            pd.DatetimeIndex(parsed).tz_convert("UTC").tz_localize(None).as_unit("ns"),
            dtype="M8[ns]",
        ).view(np.int64)
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise FeedError(f"{source}: {where}: timestamps out of range: {exc}") from None


def _numeric(frame: pd.DataFrame, column: Any, source: str, *, volume: bool) -> np.ndarray:
    raw = frame[column]
    if pd.api.types.is_bool_dtype(raw):
        raise FeedError(f"{source}: column {column!r}: expected numbers, got booleans")
    try:
        arr = np.asarray(pd.to_numeric(raw, errors="coerce"), dtype="float64")
    except (TypeError, ValueError):  # exotic objects (lists, complex, ...)
        arr = np.array([_to_float(v) for v in raw.tolist()], dtype="float64")
    nonnum = np.isnan(arr) & ~raw.isna().to_numpy()
    if nonnum.any():
        pos = int(np.argmax(nonnum))
        raise FeedError(
            f"{source}: column {column!r}, {_row(frame, pos)}: {raw.iloc[pos]!r} is not a number"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = int(np.argmax(bad))
        raise FeedError(
            f"{source}: column {column!r}, {_row(frame, pos)}: must be a finite number, "
            f"got {raw.iloc[pos]!r}"
        )
    bad = arr < 0 if volume else arr <= 0
    if bad.any():
        pos = int(np.argmax(bad))
        rule = ">= 0" if volume else "> 0"
        raise FeedError(
            f"{source}: column {column!r}, {_row(frame, pos)}: must be {rule}, got {arr[pos]}"
        )
    if pd.api.types.is_float_dtype(raw.dtype) and np.may_share_memory(arr, raw.to_numpy()):
        arr = arr.copy()  # the feed owns its data: later edits of the frame do not reach it
    return arr


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return float("nan")
