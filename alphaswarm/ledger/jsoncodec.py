"""The JSON encoding of every JSON column value: :func:`alphaswarm.jsoncodec.dumps`.

Non-finite floats are stored as null; a value of a type JSON cannot hold is refused.
"""

from __future__ import annotations

from alphaswarm.jsoncodec import dumps as json_dumps

__all__ = ["json_dumps"]
