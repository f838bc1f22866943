"""One JSON encoder: the same text from orjson and the standard library, strict and lenient."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from alphaswarm import jsoncodec
from alphaswarm.ledger.jsoncodec import json_dumps


class Colour(enum.Enum):
    RED = "red"


VALUE = {
    "ts": pd.Timestamp("2024-01-01 10:00:00.123456"),
    "nat": pd.NaT,
    "nan": np.float64("nan"),
    "inf": float("inf"),
    "int": np.int64(3),
    "array": np.array([1.0, np.nan]),
    "enum": Colour.RED,
    "decimal": decimal.Decimal("1.5"),
    "path": pathlib.PurePosixPath("/x"),
    "aware": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    "date": dt.date(2024, 1, 2),
    "big": 2**70,
    "tuple": (1, 2.5),
    7: "int key",
    "frame": pd.DataFrame({"a": [1, 2]}),
}
EXPECTED = {
    "ts": "2024-01-01T10:00:00.123456",
    "nat": None,
    "nan": None,
    "inf": None,
    "int": 3,
    "array": [1.0, None],
    "enum": "red",
    "decimal": 1.5,
    "path": "/x",
    "aware": "2024-01-01T00:00:00+00:00",
    "date": "2024-01-02",
    "big": 2**70,
    "tuple": [1, 2.5],
    "7": "int key",
    "frame": [{"a": 1}, {"a": 2}],
}


def test_every_kit_type_encodes_to_plain_json():
    assert json.loads(jsoncodec.dumps(VALUE)) == EXPECTED
    assert json.loads(jsoncodec.dumps_lenient(VALUE)) == EXPECTED
    assert json.loads(json_dumps(VALUE)) == EXPECTED  # the ledger's columns use the same one
    assert jsoncodec.jsonable(VALUE) == EXPECTED


@pytest.mark.skipif(jsoncodec.orjson is None, reason="orjson is not installed")
def test_orjson_and_the_standard_library_write_the_same_text():
    stdlib = jsoncodec._stdlib(jsoncodec._STRICT, VALUE)
    assert jsoncodec.dumps(VALUE) == stdlib
    assert jsoncodec.dumps_bytes(VALUE) == stdlib.encode()


def test_strict_refuses_unknown_types_lenient_writes_their_text():
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        jsoncodec.dumps({"x": object()})
    assert json.loads(jsoncodec.dumps_lenient({"x": Colour})) == {"x": str(Colour)}
