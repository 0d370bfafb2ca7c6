"""Storages and tensors of a PyTorch checkpoint as the safe reader rebuilds them: the
limits a file must respect, the dtype table, and one load's bookkeeping (`_Load`: storage
bytes checked against the file, views checked against their storage, a memory budget).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from jaxdark.errors import CheckpointError
from jaxdark.weights.pytorch import safe_pickle
from jaxdark.weights.pytorch.safe_pickle import Global, describe

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

MAX_FILE_BYTES = 2 << 30  # 2 GiB: 680 times the official checkpoint
MAX_EXPANSION = 4  # storages copied plus tensors made <= this times the file size
MAX_DEPTH = 32  # nesting of dicts, lists and tuples
MAX_NDIM = 32  # dimensions of one tensor
MAX_EXTENT = 1 << 48  # a shape's product (zeros counted as ones) and each stride
MAX_NAME = 256  # characters of a storage key or location
READ_STEP = 1 << 20  # bytes inflated per step
MAX_ZIP_ENTRIES = 1 << 16  # zip members (torch writes one per storage, plus six)

# Legacy typed-storage class names (what torch pickles) -> NumPy dtype.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}


@dataclass
class _StorageRef:
    """A storage named by the pickle; its bytes are attached once they are read."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    """A tensor as the pickle describes it: a checked strided view into a storage."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


class _Budget:
    """Bytes one load may still copy or materialise."""

    def __init__(self, source: str, limit: int):
        self.source = source
        self.limit = limit
        self.used = 0

    def take(self, nbytes: int, what: str) -> None:
        if self.used + nbytes > self.limit:
            raise CheckpointError(
                f"{self.source}: {what} would bring the data read to {_size(self.used + nbytes)}, "
                f"more than {MAX_EXPANSION} times the file's size ({_size(self.limit)})"
            )
        self.used += nbytes


def _size(nbytes: int) -> str:
    if nbytes.bit_length() > 64:
        return f"about 2**{nbytes.bit_length() - 1} bytes"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class _Load:
    """One load of one file: the storages it names and the bytes it may spend."""

    def __init__(self, source: str, file_size: int):
        self.source = source
        self.storages: dict[str, _StorageRef] = {}
        self.budget = _Budget(source, MAX_EXPANSION * file_size)
        self.factories: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): self.ordered_dict,
            ("torch._utils", "_rebuild_tensor"): self.rebuild_tensor,
            ("torch._utils", "_rebuild_tensor_v2"): self.rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self.rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self.rebuild_parameter,
            **{("torch", name): None for name in STORAGE_DTYPES},  # names, not calls
        }

    def fail(self, why: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: {why}")

    def unpickle(self, data: bytes | memoryview, pos: int = 0) -> tuple[Any, int]:
        return safe_pickle.load(
            data,
            source=self.source,
            factories=self.factories,
            persistent_load=self.persistent_load,
            pos=pos,
        )

    # --- what REDUCE may build --------------------------------------------------------

    def ordered_dict(self, *args: Any) -> OrderedDict:
        if args:
            raise self.fail("OrderedDict built with arguments (only empty ones are read)")
        return OrderedDict()

    def rebuild_parameter(self, data: Any, *_ignored: Any) -> _TensorRef:
        if not isinstance(data, _TensorRef):
            raise self.fail(f"parameter rebuilt from {describe(data)}, not a tensor")
        return data

    def rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *_: Any):
        if not isinstance(storage, _StorageRef):
            raise self.fail(f"tensor rebuilt from {describe(storage)}, not a storage")
        shape = self.int_tuple(size, "size")
        strides = self.int_tuple(stride, "stride")
        if not _is_int(offset) or offset < 0:
            raise self.fail(f"tensor storage offset is {describe(offset)}")
        if len(shape) != len(strides):
            raise self.fail(f"tensor has {len(shape)} sizes but {len(strides)} strides")
        if math.prod(max(n, 1) for n in shape) > MAX_EXTENT or max(strides, default=0) > MAX_EXTENT:
            raise self.fail(f"tensor of shape {shape} / stride {strides} is too large")
        numel = math.prod(shape)
        if numel:
            self.check_view(storage, offset, shape, strides)
        self.budget.take(numel * storage.dtype.itemsize, f"tensor of shape {shape}")
        return _TensorRef(storage, offset, shape, strides)

    def int_tuple(self, value: Any, what: str) -> tuple[int, ...]:
        if type(value) not in (tuple, list) or len(value) > MAX_NDIM:
            raise self.fail(f"tensor {what} is {describe(value)}, expected at most {MAX_NDIM} ints")
        for n in value:
            if not _is_int(n) or n < 0:
                raise self.fail(f"tensor {what} contains {describe(n)}, expected integers >= 0")
        return tuple(value)

    def check_view(
        self, storage: _StorageRef, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]
    ) -> None:
        """Refuse views that repeat an element (stride 0, overlap) or leave the storage."""
        reach = 0  # largest offset reached by the dimensions checked so far
        dims = [(n, s) for n, s in zip(shape, strides, strict=True) if n > 1]
        for n, s in sorted(dims, key=lambda p: p[1]):
            if s <= reach:
                why = "stride 0" if s == 0 else "overlapping strides"
                raise self.fail(f"tensor of shape {shape} / stride {strides} has {why}")
            reach += (n - 1) * s
        if offset + reach >= storage.numel:
            raise self.fail(
                f"tensor of shape {shape} / stride {strides} at offset {offset} reaches past "
                f"its storage {describe(storage.key)} of {storage.numel} elements"
            )

    # --- storages -------------------------------------------------------------------

    def persistent_load(self, pid: Any) -> _StorageRef:
        if type(pid) is not tuple or len(pid) not in (5, 6) or pid[0] != "storage":
            raise self.fail(f"unsupported persistent id ({describe(pid)})")
        storage_type, key, location, numel = pid[1:5]
        if len(pid) == 6 and pid[5] is not None:
            raise self.fail("storage views are not supported")
        if not isinstance(storage_type, Global) or storage_type.module != "torch":
            raise self.fail(f"storage type is {describe(storage_type)}")
        if not isinstance(key, str) or not 0 < len(key) <= MAX_NAME or not key.isprintable():
            raise self.fail(f"storage key is {describe(key)}")
        if not isinstance(location, str) or len(location) > MAX_NAME:
            raise self.fail(f"storage {describe(key)} has location {describe(location)}")
        dtype = STORAGE_DTYPES.get(storage_type.name)
        if dtype is None:
            raise self.fail(f"storage type is {describe(storage_type)}")
        if not _is_int(numel) or numel < 0:
            raise self.fail(f"storage {describe(key)} has size {describe(numel)}")
        if numel * dtype.itemsize > self.budget.limit:
            raise self.fail(
                f"storage {describe(key)} declares {_size(numel * dtype.itemsize)}, "
                f"more than the file can hold"
            )
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = _StorageRef(key, dtype, numel)
        elif ref.dtype != dtype or ref.numel != numel:
            raise self.fail(f"storage {describe(key)} is declared twice, differently")
        return ref

    def attach(self, ref: _StorageRef, buf: bytes | memoryview, byteorder: str) -> None:
        expected = ref.numel * ref.dtype.itemsize
        if len(buf) != expected:
            raise self.fail(
                f"storage {describe(ref.key)} has {len(buf)} bytes, expected {expected} "
                "(truncated?)"
            )
        data = np.frombuffer(buf, dtype=ref.dtype)
        if byteorder == "big" and ref.dtype.itemsize > 1:
            self.budget.take(expected, f"byte-swapping storage {describe(ref.key)}")
            data = np.frombuffer(buf, dtype=ref.dtype.newbyteorder(">")).astype(ref.dtype)
        ref.data = data

    # --- materialising ----------------------------------------------------------------

    def materialise(self, obj: Any) -> Any:
        for ref in self.storages.values():
            if ref.data is None:
                raise self.fail(f"storage {describe(ref.key)} has no data")
        return safe_pickle.rebuild(obj, self.leaf, source=self.source, max_depth=MAX_DEPTH)

    def leaf(self, x: Any) -> Any:
        if isinstance(x, _TensorRef):
            return self.tensor_array(x)
        if isinstance(x, _StorageRef):
            raise self.fail(f"a bare storage ({describe(x.key)}) outside a tensor")
        if isinstance(x, Global):
            raise self.fail(f"a reference to {x} where a value belongs")
        return x

    def tensor_array(self, t: _TensorRef) -> np.ndarray:
        data = t.storage.data
        assert data is not None
        if math.prod(t.shape) == 0:
            return np.zeros(t.shape, data.dtype)
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[t.offset :], shape=t.shape, strides=[s * item for s in t.stride], writeable=False
        )
        return np.array(view, copy=True)
