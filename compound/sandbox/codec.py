"""JSON encoding of call arguments and results that crosses the sandbox boundary.

Why JSON and not pickle: the sandboxed process runs untrusted code, so whatever
it sends back is untrusted too, and unpickling untrusted bytes executes code.
JSON decodes to plain values; NumPy arrays travel as base64 bytes plus a dtype
from a fixed allow-list of numeric types (never ``object``), rebuilt with
``np.frombuffer``.

This file needs only the standard library (NumPy when arrays appear) because
the sandbox child runs it verbatim in front of its harness (``python -I``
cannot import ``compound``). Keep it free of ``compound`` imports and of
``from __future__`` lines.
"""

import base64
import json

SAFE_DTYPES = frozenset(
    [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ]
)
_ARRAY = "__ndarray__"
_TUPLE = "__tuple__"
MAX_DEPTH = 32  # containers nested deeper than this do not cross (either way)


def _deeper(depth):
    if depth >= MAX_DEPTH:
        raise ValueError(f"values nested deeper than {MAX_DEPTH} levels cannot cross the sandbox boundary")
    return depth + 1


def encode_value(value, depth=0):
    """Plain values pass; arrays, NumPy scalars and tuples become tagged dicts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list, dict)):
        depth = _deeper(depth)
    if isinstance(value, tuple):
        return {_TUPLE: [encode_value(v, depth) for v in value]}
    if isinstance(value, list):
        return [encode_value(v, depth) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only dicts with str keys can cross the sandbox boundary")
        if _ARRAY in value or _TUPLE in value:
            raise TypeError(f"dict keys {_ARRAY!r} and {_TUPLE!r} are reserved")
        return {k: encode_value(v, depth) for k, v in value.items()}
    return _encode_numpy(value)


def _encode_numpy(value):
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is None or not isinstance(value, (np.ndarray, np.generic)):
        raise TypeError(f"a value of type {type(value).__name__} cannot cross the sandbox boundary")
    scalar = isinstance(value, np.generic)
    array = np.ascontiguousarray(np.asarray(value))
    if array.dtype.name not in SAFE_DTYPES:
        raise TypeError(f"arrays of dtype {array.dtype} cannot cross the sandbox boundary")
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {
        _ARRAY: base64.b64encode(array.tobytes()).decode("ascii"),
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "scalar": scalar,
    }


def decode_value(obj, depth=0):
    """The inverse of ``encode_value``; rejects anything outside the allowed shapes."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        depth = _deeper(depth)
        return [decode_value(v, depth) for v in obj]
    if not isinstance(obj, dict):
        raise TypeError(f"unexpected JSON value of type {type(obj).__name__}")
    if _ARRAY in obj:
        return _decode_array(obj)
    depth = _deeper(depth)
    if _TUPLE in obj:
        items = obj[_TUPLE]
        if len(obj) != 1 or not isinstance(items, list):
            raise ValueError("malformed tuple")
        return tuple(decode_value(v, depth) for v in items)
    return {str(k): decode_value(v, depth) for k, v in obj.items()}


def _decode_array(obj):
    import numpy as np

    dtype_name, shape, data = obj.get("dtype"), obj.get("shape"), obj.get(_ARRAY)
    if dtype_name not in SAFE_DTYPES or not isinstance(data, str):
        raise ValueError(f"array of disallowed dtype {dtype_name!r}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"malformed array shape {shape!r}")
    dtype = np.dtype(dtype_name).newbyteorder("<")
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    count = 1
    for n in shape:
        count *= n
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"array bytes do not match shape {shape} and dtype {dtype_name}")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return array[()] if obj.get("scalar") else array


def dumps(value):
    return json.dumps(encode_value(value), allow_nan=True)


def loads(text):
    return decode_value(json.loads(text))
