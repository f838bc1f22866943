"""Frame blocks: the high-volume frames of one written batch as one compact value.

A paper session publishes two frames per bar (``bar.received`` and
``equity.update``). Stored one row each, their JSON encoding and their inserts were
most of a fast replay's time. A batch's frames of those stages are stored instead as
one ``paper_frame_blocks`` row: the envelopes as one JSON array, encoded once for the
whole batch (orjson when installed) and compressed with zlib, whose dictionary takes
the keys and values every frame repeats (about 35 bytes a frame). :func:`decode_block`
gives back the exact envelopes the bus published (same keys in the same order, same
values), in ``seq`` order.

A column-per-key layout was measured too: grouping the envelopes by keys in Python
cost more than the encoding it saved (3.0 against 1.5 microseconds a frame, with zlib),
for blocks 30 % smaller.

A paper session records those frames rather than building them
(:mod:`alphaswarm.frame_records`): a batch of records is stored as encoding
``records-json-zlib/1``, the records themselves as one JSON array (plain numbers and
text, a tenth of the envelopes' size before compression), and :func:`decode_block`
expands them into the envelopes the session would have built. A record holding a
value JSON cannot (a non-finite number) is stored as its envelope in the same array.

Every other frame (orders, fills, halts, errors, heartbeats ...) stays a
``paper_frames`` row, so SQL over ``paper_frames`` still finds them.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

from alphaswarm.frame_records import expand_record
from alphaswarm.jsoncodec import dumps_bytes
from alphaswarm.ledger.errors import LedgerError

try:  # optional: faster, same values
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _loads = json.loads

__all__ = [
    "BLOCK_STAGES",
    "ENCODING",
    "RECORDS_ENCODING",
    "decode_block",
    "encode_block",
    "encode_records",
]

#: Stages whose frames are stored in blocks rather than as ``paper_frames`` rows.
BLOCK_STAGES = frozenset({"bar.received", "equity.update"})

#: The encoding :func:`encode_block` writes (stored beside each block).
ENCODING = "json-zlib/1"
#: The encoding :func:`encode_records` writes.
RECORDS_ENCODING = "records-json-zlib/1"
_KNOWN = frozenset({ENCODING, RECORDS_ENCODING})
#: What JSON writes for a missing or non-finite number: a record holding one is
#: stored as its envelope (the envelope's ``null`` is what the session published).
_NULL = b"null"
#: zlib level: the fastest; the keys and values every frame repeats compress well anyway.
_LEVEL = 1


def encode_block(frames: list[dict[str, Any]]) -> bytes:
    """Encode frame envelopes (JSON-ready dicts) as one block.

    Parameters
    ----------
    frames : list of dict
        Envelopes, each with an integer ``seq``; values must be JSON values.

    Returns
    -------
    bytes
        The zlib-compressed JSON array of the envelopes.

    Raises
    ------
    LedgerError
        When a value cannot be stored as JSON.
    """
    return zlib.compress(_json(frames), _LEVEL)


def _json(values: list[Any]) -> bytes:
    """``values`` as JSON bytes; a :class:`LedgerError` for a value JSON cannot hold."""
    try:
        return dumps_bytes(values)
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"frame: a value cannot be stored as JSON ({exc})") from None


def encode_records(task_id: str, records: list[tuple]) -> bytes:
    """Encode frame records (:mod:`alphaswarm.frame_records`) of run ``task_id`` as one block.

    Returns
    -------
    bytes
        The zlib-compressed JSON array of the records (a record JSON cannot hold
        exactly is stored as its envelope).

    Raises
    ------
    LedgerError
        When a value cannot be stored as JSON.
    """
    payload = _json(records)
    if _NULL in payload:
        payload = _json([_exact(task_id, r) for r in records])
    return zlib.compress(payload, _LEVEL)


def _exact(task_id: str, record: tuple) -> tuple | dict[str, Any]:
    """``record``, or its envelope when a number of it is not finite."""
    for value in record:
        if value is None or (type(value) is float and not math.isfinite(value)):
            return expand_record(task_id, record)
    return record


def decode_block(data: bytes, encoding: str = ENCODING, task_id: str = "") -> list[dict[str, Any]]:
    """The envelopes a block stores, in ``seq`` order.

    Parameters
    ----------
    data : bytes
        The block's ``data``.
    encoding : str
        The block's ``encoding``.
    task_id : str
        The run the block belongs to (its ``paper_run_id``): records are expanded
        with it.

    Raises
    ------
    LedgerError
        For an encoding this version does not know (a newer kit wrote it).
    """
    if encoding not in _KNOWN:
        raise LedgerError(f"paper_frame_blocks: unknown encoding {encoding!r}; upgrade alphaswarm")
    items = _loads(zlib.decompress(bytes(data)))
    if encoding == RECORDS_ENCODING:
        frames = [f if type(f) is dict else expand_record(task_id, f) for f in items]
    else:
        frames = items
    frames.sort(key=_seq)  # written in seq order: a check of the order, in effect
    return frames


def _seq(frame: dict[str, Any]) -> int:
    return frame["seq"]
