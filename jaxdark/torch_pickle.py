"""Read PyTorch checkpoints into NumPy arrays without PyTorch, and without running their code.

A checkpoint is untrusted input: a pickle can name any importable callable and have it
called. `read_torch_checkpoint` unpickles with an allow-list of exactly the globals needed
to rebuild tensors and (ordered) dicts; anything else ends with a one-line
`CheckpointError`. Tensor data is never handed to a constructor from the file: storages
become NumPy buffers and tensors become bounds-checked strided views of them.

Both serialisations of ``torch.save`` are supported:

* the zip format (default since PyTorch 1.6): ``<archive>/data.pkl`` plus one raw file
  per storage under ``<archive>/data/``;
* the legacy format: a magic-number pickle, a protocol-version pickle, a system-info
  pickle, the object pickle, the pickled list of storage keys, then for each storage an
  int64 element count followed by its raw bytes.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from jaxdark.errors import CheckpointError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

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
    """A tensor as the pickle describes it: a strided view into a storage."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise CheckpointError("tensor rebuilt from something that is not a storage")
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored) -> _TensorRef:
    if not isinstance(data, _TensorRef):
        raise CheckpointError("parameter rebuilt from something that is not a tensor")
    return data


class _StorageMarker:
    """Stands in for ``torch.FloatStorage`` etc. while unpickling."""

    def __init__(self, name: str):
        self.dtype = STORAGE_DTYPES[name]


# (module, name) -> object handed to the unpickler. Nothing else can be loaded.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageMarker(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only `_SAFE_GLOBALS` and torch storage references."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self.source}: refusing to load global '{module}.{name}' "
                "(only tensors and dicts are allowed in a checkpoint)"
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self.source}: unsupported persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], pid[4]
        if not isinstance(storage_type, _StorageMarker):
            raise CheckpointError(f"{self.source}: storage {key} has an unknown storage type")
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointError(f"{self.source}: storage views are not supported")
        if not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"{self.source}: storage {key} has invalid size {numel!r}")
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = _StorageRef(key, storage_type.dtype, numel)
        return ref


def _unpickle(data: bytes | io.BytesIO, source: str) -> tuple[Any, dict[str, _StorageRef]]:
    f = data if isinstance(data, io.BytesIO) else io.BytesIO(data)
    unpickler = _RestrictedUnpickler(f, source)
    try:
        obj = unpickler.load()
    except CheckpointError:
        raise
    except EOFError:
        raise CheckpointError(f"{source}: file is truncated (pickle ends early)") from None
    except Exception as e:  # malformed pickles raise many types
        raise CheckpointError(f"{source}: corrupt or unsupported pickle ({e})") from None
    return obj, unpickler.storages


def _read_zip(path: Path, raw: bytes) -> Any:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        names = archive.namelist()
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: corrupt zip checkpoint ({e})") from None
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise CheckpointError(f"{path}: zip file is not a PyTorch checkpoint (no data.pkl)")
    prefix = pkl[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").decode().strip()
    obj, storages = _unpickle(archive.read(pkl[0]), str(path))
    for ref in storages.values():
        name = f"{prefix}data/{ref.key}"
        try:
            buf = archive.read(name)
        except KeyError:
            raise CheckpointError(f"{path}: storage file '{name}' is missing") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise CheckpointError(f"{path}: storage file '{name}' is corrupt ({e})") from None
        ref.data = _storage_array(path, ref, buf, byteorder)
    return obj


def _read_legacy(path: Path, raw: bytes) -> Any:
    f = io.BytesIO(raw)
    magic, _ = _unpickle(f, str(path))
    if magic != LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    protocol, _ = _unpickle(f, str(path))
    if protocol != LEGACY_PROTOCOL:
        raise CheckpointError(f"{path}: unsupported legacy protocol version {protocol!r}")
    sys_info, _ = _unpickle(f, str(path))
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    obj, storages = _unpickle(f, str(path))
    keys, _ = _unpickle(f, str(path))
    if not isinstance(keys, list):
        raise CheckpointError(f"{path}: corrupt storage key list")
    for key in keys:
        ref = storages.get(str(key))
        if ref is None:
            raise CheckpointError(f"{path}: storage key {key!r} was never referenced")
        head = f.read(8)
        if len(head) != 8:
            raise CheckpointError(f"{path}: file is truncated (storage {key})")
        (numel,) = struct.unpack("<q" if little else ">q", head)
        if numel != ref.numel:
            raise CheckpointError(
                f"{path}: storage {key} holds {numel} elements, the pickle says {ref.numel}"
            )
        buf = f.read(numel * ref.dtype.itemsize)
        ref.data = _storage_array(path, ref, buf, "little" if little else "big")
    return obj


def _storage_array(path: Path, ref: _StorageRef, buf: bytes, byteorder: str) -> np.ndarray:
    expected = ref.numel * ref.dtype.itemsize
    if len(buf) != expected:
        raise CheckpointError(
            f"{path}: storage {ref.key} has {len(buf)} bytes, expected {expected} (truncated?)"
        )
    if byteorder not in ("little", "big"):
        raise CheckpointError(f"{path}: unknown byte order {byteorder!r}")
    dtype = ref.dtype.newbyteorder("<" if byteorder == "little" else ">")
    if ref.dtype.kind in "b" or ref.dtype.itemsize == 1:
        dtype = ref.dtype
    return np.frombuffer(buf, dtype=dtype).astype(ref.dtype, copy=True)


def _materialise(obj: Any, path: Path) -> Any:
    """Replace every `_TensorRef` in ``obj`` with a NumPy array (a bounds-checked copy)."""
    if isinstance(obj, _TensorRef):
        return _tensor_array(obj, path)
    if isinstance(obj, dict):
        return type(obj)((k, _materialise(v, path)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_materialise(v, path) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v, path) for v in obj)
    return obj


def _tensor_array(t: _TensorRef, path: Path) -> np.ndarray:
    data = t.storage.data
    if data is None:
        raise CheckpointError(f"{path}: storage {t.storage.key} has no data")
    if len(t.shape) != len(t.stride) or any(s < 0 for s in (*t.shape, *t.stride)):
        raise CheckpointError(f"{path}: tensor has invalid shape {t.shape} / stride {t.stride}")
    if any(s == 0 for s in t.shape):
        return np.zeros(t.shape, data.dtype)
    last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride, strict=True))
    if t.offset < 0 or last >= data.size:
        raise CheckpointError(
            f"{path}: tensor of shape {t.shape} reaches past its storage {t.storage.key}"
        )
    item = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[t.offset :], shape=t.shape, strides=[s * item for s in t.stride], writeable=False
    )
    return np.array(view, copy=True)


def read_torch_checkpoint(path: str | Path) -> Any:
    """Load a ``torch.save`` file (zip or legacy) with tensors as NumPy arrays.

    Raises `CheckpointError` (one line, naming the file) for unreadable, truncated or
    unsafe files; `FileNotFoundError` if ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    raw = path.read_bytes()
    if raw[:4] == b"PK\x03\x04":
        obj = _read_zip(path, raw)
    elif raw[:1] == b"\x80":  # a pickle (protocol >= 2)
        obj = _read_legacy(path, raw)
    else:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither zip nor pickle)")
    return _materialise(obj, path)


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
                f"{source}: entry {name!r} is not a named tensor ({type(value).__name__})"
            )
        out[name.removeprefix("module.")] = value
    return out
