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

Every other frame (orders, fills, halts, errors, heartbeats ...) stays a
``paper_frames`` row, so SQL over ``paper_frames`` still finds them.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from alphaswarm.jsoncodec import dumps_bytes
from alphaswarm.ledger.errors import LedgerError

try:  # optional: faster, same values
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _loads = json.loads

__all__ = ["BLOCK_STAGES", "ENCODING", "decode_block", "encode_block"]

#: Stages whose frames are stored in blocks rather than as ``paper_frames`` rows.
BLOCK_STAGES = frozenset({"bar.received", "equity.update"})

#: The encoding :func:`encode_block` writes (stored beside each block).
ENCODING = "json-zlib/1"
_KNOWN = frozenset({ENCODING})
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
    try:
        payload = dumps_bytes(frames)
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"frame: a value cannot be stored as JSON ({exc})") from None
    return zlib.compress(payload, _LEVEL)


def decode_block(data: bytes, encoding: str = ENCODING) -> list[dict[str, Any]]:
    """The envelopes :func:`encode_block` stored, in ``seq`` order.

    Raises
    ------
    LedgerError
        For an encoding this version does not know (a newer kit wrote it).
    """
    if encoding not in _KNOWN:
        raise LedgerError(f"paper_frame_blocks: unknown encoding {encoding!r}; upgrade alphaswarm")
    frames: list[dict[str, Any]] = _loads(zlib.decompress(bytes(data)))
    frames.sort(key=_seq)  # written in seq order: a check of the order, in effect
    return frames


def _seq(frame: dict[str, Any]) -> int:
    return frame["seq"]
