"""Read PyTorch checkpoints into NumPy arrays without PyTorch, and without running their code.

A checkpoint is untrusted input. It is unpickled by `jaxdark.weights.pytorch.safe_pickle`, which
builds
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
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from jaxdark.errors import CheckpointError, flatten, printable_path
from jaxdark.weights.pytorch.safe_pickle import describe

# --- the two file formats ---------------------------------------------------------------
from jaxdark.weights.pytorch.storage import (  # noqa: F401  (re-exported)
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    MAX_DEPTH,
    MAX_EXPANSION,
    MAX_EXTENT,
    MAX_FILE_BYTES,
    MAX_NAME,
    MAX_NDIM,
    MAX_ZIP_ENTRIES,
    READ_STEP,
    STORAGE_DTYPES,
    _Budget,
    _is_int,
    _Load,
    _size,
    _StorageRef,
    _TensorRef,
)


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
