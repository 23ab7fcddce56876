"""Numpy arrays to bytes and files and back, without pickle.

Bytes: msgpack (srsly) of {name: {"dtype", "shape", "data"}}, each array's raw buffer; only
numeric dtypes are accepted back, so no object array (which numpy would unpickle) is ever
made. Files: `np.savez` and `np.load(allow_pickle=False)`.
"""

from pathlib import Path
from typing import Any, Dict, Union

import numpy as np
import srsly

# Numeric kinds only: b(ool), i(nt), u(nsigned), f(loat). Object ("O") arrays would need pickle.
_SAFE_KINDS = "biuf"


class KBFormatError(ValueError):
    """Serialised KB data that is not what `ConceptKB` writes."""


def arrays_to_msg(arrays: Dict[str, np.ndarray]) -> Dict[str, Dict[str, Any]]:
    """Arrays as msgpack-ready dicts of dtype, shape and raw little-endian bytes."""
    out: Dict[str, Dict[str, Any]] = {}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        _check_dtype(name, array.dtype, "the arrays")
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        out[name] = {"dtype": little.dtype.str, "shape": list(array.shape), "data": little.tobytes()}
    return out


def arrays_from_msg(msg: Dict[str, Dict[str, Any]], where: str) -> Dict[str, np.ndarray]:
    """The arrays of `arrays_to_msg`' output; KBFormatError names `where` and the array on bad input."""
    arrays: Dict[str, np.ndarray] = {}
    for name, item in msg.items():
        try:
            dtype = np.dtype(item["dtype"])
            shape = tuple(int(n) for n in item["shape"])
        except (KeyError, TypeError) as err:
            raise KBFormatError(f"{where}: array {name!r}: expected dtype, shape and data, found {err}") from None
        _check_dtype(name, dtype, where)
        array = np.frombuffer(item["data"], dtype=dtype)
        if array.size != int(np.prod(shape)):
            raise KBFormatError(f"{where}: array {name!r}: {array.size} values, expected shape {shape}")
        arrays[name] = array.reshape(shape)
    return arrays


def write_npz(path: Union[str, Path], arrays: Dict[str, np.ndarray]) -> None:
    """Write arrays to an uncompressed .npz file (loads faster than a compressed one)."""
    np.savez(Path(path), **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds loosely


def read_npz(path: Union[str, Path]) -> Dict[str, np.ndarray]:
    """Read an .npz file with `allow_pickle=False`; KBFormatError names the file on bad input."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, OSError) as err:
        raise KBFormatError(f"{path}: expected a numeric .npz file written by ConceptKB, found: {err}") from None
    for name, array in arrays.items():
        _check_dtype(name, array.dtype, str(path))
    return arrays


def dumps(obj: Any) -> bytes:
    """msgpack bytes of plain data (dicts, lists, strings, numbers, bytes)."""
    return srsly.msgpack_dumps(obj)


def loads(data: bytes, where: str) -> Any:
    """Plain data from msgpack bytes; KBFormatError names `where` on bad input."""
    try:
        return srsly.msgpack_loads(data)
    except Exception as err:  # msgpack raises several unrelated types on corrupt input
        raise KBFormatError(f"{where}: expected msgpack bytes written by ConceptKB, found: {err}") from None


def _check_dtype(name: str, dtype: np.dtype, where: str) -> None:
    if dtype.kind not in _SAFE_KINDS:
        raise KBFormatError(f"{where}: array {name!r} has dtype {dtype}; expected a numeric dtype")
