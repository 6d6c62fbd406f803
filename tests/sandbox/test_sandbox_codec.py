"""The JSON codec that carries arguments and results across the sandbox boundary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compound.sandbox import codec


@pytest.mark.parametrize(
    "value",
    [
        None,
        3,
        2.5,
        "text",
        [1, [2, 3]],
        {"a": (1, 2)},
        (np.arange(6, dtype=np.int32).reshape(2, 3), np.float64(1.5)),
        np.array([True, False]),
        np.zeros((0, 4), dtype=np.float32),
        np.array([1 + 2j], dtype=np.complex128),
    ],
)
def test_round_trip_keeps_values_types_and_shapes(value):
    back = codec.loads(codec.dumps(value))
    assert type(back) is type(value) or isinstance(value, np.generic)
    if isinstance(value, tuple) and isinstance(value[0], np.ndarray):
        np.testing.assert_array_equal(back[0], value[0])
        assert back[0].dtype == value[0].dtype and back[1] == value[1]
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(back, value)
        assert back.dtype == value.dtype and back.shape == value.shape
    else:
        assert back == value


def test_non_finite_floats_survive():
    back = codec.loads(codec.dumps(np.array([np.nan, np.inf, -np.inf])))
    assert np.isnan(back[0]) and back[1] == np.inf and back[2] == -np.inf


@pytest.mark.parametrize("value", [object(), np.array([object()]), np.array(["a"]), {1: 2}])
def test_unsafe_values_are_refused_on_encode(value):
    with pytest.raises(TypeError):
        codec.encode_value(value)


@pytest.mark.parametrize(
    "payload",
    [
        {"__ndarray__": "AAAA", "dtype": "object", "shape": [1], "scalar": False},
        {"__ndarray__": "AAAA", "dtype": "float64", "shape": [5], "scalar": False},
        {"__ndarray__": "AAAA", "dtype": "float64", "shape": [-1], "scalar": False},
        {"__tuple__": 3},
    ],
)
def test_malformed_payloads_are_refused_on_decode(payload):
    with pytest.raises(ValueError):
        codec.loads(json.dumps(payload))
