"""Read PyTorch checkpoints into NumPy arrays without PyTorch, and without running their code.

A checkpoint is untrusted input. It is unpickled by `jaxdark.safe_pickle`, which builds
plain data only and admits exactly the globals needed to rebuild tensors and (ordered)
dicts; storages become NumPy buffers and tensors become checked strided views of them,
copied out. Anything else ends with a one-line `CheckpointError` naming the file.

Resources are bounded before they are spent:

* a storage's declared size is checked against the bytes that exist (the rest of the file
  for the legacy format, the zip entry's size in the central directory for the zip
  format) before anything is read or inflated, and entries are inflated in capped steps;
* tensor views must be non-negative, non-overlapping and inside their storage (no stride
  0, no two elements in one place); shapes and strides must be integers of sane size;
* storages copied out plus tensors materialised may take at most `MAX_EXPANSION` times
  the file's size;
* nesting is limited to `MAX_DEPTH` levels and one load to `safe_pickle.MAX_OPS` pickle
  operations, so memory and time are linear in the file.

Both serialisations of ``torch.save`` are supported:

* the zip format (default since PyTorch 1.6): ``<archive>/data.pkl`` plus one raw file
  per storage under ``<archive>/data/``;
* the legacy format: a magic-number pickle, a protocol-version pickle, a system-info
  pickle, the object pickle, the pickled list of storage keys, then for each storage an
  int64 element count followed by its raw bytes.
"""

from __future__ import annotations

import io
import math
import stat
import struct
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from jaxdark import safe_pickle
from jaxdark.errors import CheckpointError, flatten, printable_path
from jaxdark.safe_pickle import Global, describe

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


# --- the two file formats ---------------------------------------------------------------


def _read_entry(load: _Load, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """An entry's bytes, refused before inflating when it claims more than the budget."""
    name = describe(info.filename)
    if info.flag_bits & 0x1:
        raise load.fail(f"zip entry {name} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise load.fail(f"zip entry {name} uses compression method {info.compress_type}")
    load.budget.take(info.file_size, f"zip entry {name} ({_size(info.file_size)})")
    out = bytearray()
    try:
        with archive.open(info) as f:
            while len(out) < info.file_size:
                chunk = f.read(min(READ_STEP, info.file_size - len(out)))
                if not chunk:
                    break
                out += chunk
            f.read(1)  # reaches the end, where zipfile checks the CRC
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error) as e:
        raise load.fail(f"zip entry {name} is corrupt ({flatten(str(e))})") from None
    except (NotImplementedError, RuntimeError) as e:  # compression or encryption zipfile lacks
        raise load.fail(f"zip entry {name} cannot be read ({flatten(str(e))})") from None
    if len(out) != info.file_size:
        raise load.fail(f"zip entry {name} is truncated")
    return bytes(out)


def _read_zip(load: _Load, raw: bytes) -> Any:
    # Every central-directory record starts with this signature, so the count bounds the
    # entries zipfile would parse (and the memory it would spend on them).
    if raw.count(b"PK\x01\x02") > MAX_ZIP_ENTRIES:
        raise load.fail(f"zip file has more than {MAX_ZIP_ENTRIES} entries")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OverflowError, EOFError) as e:
        raise load.fail(f"corrupt zip checkpoint ({flatten(str(e))})") from None
    except (struct.error, NotImplementedError, RuntimeError) as e:
        raise load.fail(f"corrupt zip checkpoint ({flatten(str(e))})") from None
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename in by_name:
            raise load.fail(f"zip entry {describe(info.filename)} appears twice")
        by_name[info.filename] = info
    pkl = [n for n in by_name if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise load.fail("zip file is not a PyTorch checkpoint (no single data.pkl)")
    prefix = pkl[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in by_name:
        record = _read_entry(load, archive, by_name[prefix + "byteorder"])
        byteorder = record.decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise load.fail(f"byte-order record is {describe(byteorder)}, not 'little' or 'big'")
    obj, _ = load.unpickle(_read_entry(load, archive, by_name[pkl[0]]))
    for ref in load.storages.values():
        name = f"{prefix}data/{ref.key}"
        info = by_name.get(name)
        if info is None:
            raise load.fail(f"storage file {describe(name)} is missing")
        expected = ref.numel * ref.dtype.itemsize
        if info.file_size != expected:
            raise load.fail(
                f"storage file {describe(name)} holds {info.file_size} bytes, "
                f"the pickle says {expected}"
            )
        load.attach(ref, _read_entry(load, archive, info), byteorder)
    return obj


def _read_legacy(load: _Load, raw: bytes) -> Any:
    view = memoryview(raw)
    magic, pos = load.unpickle(view)
    if magic != LEGACY_MAGIC:
        raise load.fail("not a PyTorch checkpoint (bad magic number)")
    protocol, pos = load.unpickle(view, pos)
    if protocol != LEGACY_PROTOCOL:
        raise load.fail(f"unsupported legacy protocol version {describe(protocol)}")
    sys_info, pos = load.unpickle(view, pos)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    if not isinstance(little, bool):
        raise load.fail(f"byte-order record is {describe(little)}, expected True or False")
    if load.storages:
        raise load.fail("storages referenced in the header")
    obj, pos = load.unpickle(view, pos)
    keys, pos = load.unpickle(view, pos)
    if type(keys) is not list or not all(isinstance(k, str) for k in keys):
        raise load.fail("corrupt storage key list")
    if len(set(keys)) != len(keys) or set(keys) != set(load.storages):
        raise load.fail("storage key list does not match the storages the pickle uses")
    head = struct.Struct("<q" if little else ">q")
    for key in keys:
        ref = load.storages[key]
        if len(raw) - pos < 8:
            raise load.fail(f"file is truncated (storage {describe(key)})")
        (numel,) = head.unpack_from(raw, pos)
        pos += 8
        if numel != ref.numel:
            raise load.fail(
                f"storage {describe(key)} holds {numel} elements, the pickle says {ref.numel}"
            )
        nbytes = numel * ref.dtype.itemsize
        if nbytes > len(raw) - pos:
            raise load.fail(
                f"file is truncated (storage {describe(key)} needs {nbytes} bytes, "
                f"{len(raw) - pos} are left)"
            )
        load.attach(ref, view[pos : pos + nbytes], "little" if little else "big")
        pos += nbytes
    return obj


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {name}") from None
    except OSError as e:
        raise CheckpointError(f"{name}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{name}: not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise CheckpointError(
            f"{name}: {_size(st.st_size)}, more than a checkpoint may be ({_size(MAX_FILE_BYTES)})"
        )
    try:
        with open(path, "rb") as f:
            raw = f.read()  # sized by fstat, so no larger buffer is reserved
    except OSError as e:
        raise CheckpointError(f"{name}: cannot read ({e.strerror or e})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise CheckpointError(f"{name}: more than {_size(MAX_FILE_BYTES)}")
    return raw


def read_torch_checkpoint(path: str | Path) -> Any:
    """Load a ``torch.save`` file (zip or legacy) with tensors as NumPy arrays.

    Raises `CheckpointError` (one line, naming the file) for unreadable, truncated,
    oversized or unsafe files; `FileNotFoundError` if ``path`` does not exist.
    """
    path = Path(path)
    name = printable_path(path)
    try:
        raw = _read_bytes(path, name)
        load = _Load(name, len(raw))
        if raw[:4] == b"PK\x03\x04":
            obj = _read_zip(load, raw)
        elif raw[:1] == b"\x80":  # a pickle (protocol >= 2)
            obj = _read_legacy(load, raw)
        else:
            raise CheckpointError(f"{name}: not a PyTorch checkpoint (neither zip nor pickle)")
        return load.materialise(obj)
    except MemoryError:
        raise CheckpointError(f"{name}: not enough memory to read it") from None
    except RecursionError:
        raise CheckpointError(f"{name}: nested too deeply") from None


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, np.ndarray]:
    """The flat ``name -> array`` state dict inside a loaded checkpoint.

    Accepts a bare state dict or one nested under ``model`` or ``state_dict``, and strips
    a ``module.`` prefix (from ``DataParallel``) from every key.
    """
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: expected a dict of tensors, got {type(obj).__name__}")
    for key in ("model", "state_dict"):
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    out: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, np.ndarray):
            raise CheckpointError(
                f"{source}: entry {describe(name)} is not a named tensor ({type(value).__name__})"
            )
        short = name.removeprefix("module.")
        if short in out:
            raise CheckpointError(f"{source}: key {describe(short)} appears twice")
        out[short] = value
    return out
