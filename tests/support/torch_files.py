"""Write ``torch.save``-format files without torch: a small pickle assembler, the legacy
and the zip container, written byte by byte so that tests can bend any field.

Values given to `dumps` may be plain Python data, `Tensor` (a ``_rebuild_tensor_v2``
call on a `Storage`, emitted as torch emits it), `Call` (any global called with
arguments), `Global` (a bare global) or `Op` (opcode bytes spliced in as they are).
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ITEMSIZE = {"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "LongStorage": 8}


@dataclass(eq=False)
class Storage:
    """A storage: its persistent id fields and, for the container, its bytes."""

    key: str
    numel: int
    dtype: str = "FloatStorage"
    location: str = "cpu"
    data: bytes | None = None  # None: numel zeros of the dtype

    def payload(self) -> bytes:
        return self.data if self.data is not None else bytes(self.numel * ITEMSIZE[self.dtype])


@dataclass(eq=False)
class Tensor:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""

    storage: Storage
    size: Any
    stride: Any = None  # None: contiguous
    offset: Any = 0
    func: str = "_rebuild_tensor_v2"


@dataclass(eq=False)
class Global:
    """A GLOBAL opcode."""

    module: str
    name: str


@dataclass(eq=False)
class Call:
    """``module.name(*args)`` via GLOBAL + REDUCE."""

    module: str
    name: str
    args: tuple = ()


@dataclass(eq=False)
class Op:
    """Opcode bytes spliced in unchanged (they should leave one value on the stack)."""

    raw: bytes


def contiguous(size: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides of ``size``."""
    strides, step = [], 1
    for n in reversed(size):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def value(self, v: Any) -> None:
        out = self.out
        if v is None:
            out += b"N"
        elif v is True:
            out += b"\x88"
        elif v is False:
            out += b"\x89"
        elif isinstance(v, int):
            if -(2**31) <= v < 2**31:
                out += b"J" + struct.pack("<i", v)
            else:
                raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
                if len(raw) < 256:
                    out += b"\x8a" + bytes([len(raw)]) + raw
                else:
                    out += b"\x8b" + struct.pack("<i", len(raw)) + raw
        elif isinstance(v, float):
            out += b"G" + struct.pack(">d", v)
        elif isinstance(v, str):
            raw = v.encode("utf-8", "surrogatepass")
            out += b"X" + struct.pack("<I", len(raw)) + raw
        elif isinstance(v, bytes):
            out += b"B" + struct.pack("<I", len(v)) + v
        elif isinstance(v, tuple):
            out += b"("
            for x in v:
                self.value(x)
            out += b"t"
        elif isinstance(v, list):
            out += b"]("
            for x in v:
                self.value(x)
            out += b"e"
        elif isinstance(v, OrderedDict):
            out += b"ccollections\nOrderedDict\n)R"
            self.items(v)
        elif isinstance(v, dict):
            out += b"}"
            self.items(v)
        elif isinstance(v, Storage):
            self.value(("storage", Global("torch", v.dtype), v.key, v.location, v.numel))
            out += b"Q"
        elif isinstance(v, Tensor):
            stride = contiguous(v.size) if v.stride is None else v.stride
            args = (v.storage, v.offset, v.size, stride, False, OrderedDict())
            self.value(Call("torch._utils", v.func, args))
        elif isinstance(v, Global):
            out += f"c{v.module}\n{v.name}\n".encode()
        elif isinstance(v, Call):
            self.value(Global(v.module, v.name))
            self.value(tuple(v.args))
            out += b"R"
        elif isinstance(v, Op):
            out += v.raw
        else:
            raise TypeError(f"cannot write {type(v).__name__}")

    def items(self, d: dict) -> None:
        if not d:
            return
        self.out += b"("
        for k, x in d.items():
            self.value(k)
            self.value(x)
        self.out += b"u"


def dumps(obj: Any, protocol: int = 2) -> bytes:
    """A pickle of ``obj`` (PROTO, the value, STOP)."""
    w = _Writer()
    w.out += bytes([0x80, protocol])
    w.value(obj)
    w.out += b"."
    return bytes(w.out)


def storages_in(obj: Any) -> list[Storage]:
    """The distinct storages ``obj`` refers to, in order of first use."""
    found: dict[int, Storage] = {}

    def walk(v: Any) -> None:
        if isinstance(v, Storage):
            found.setdefault(id(v), v)
        elif isinstance(v, Tensor):
            walk(v.storage)
        elif isinstance(v, Call):
            walk(v.args)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)

    walk(obj)
    return list(found.values())


def legacy_file(
    obj: Any,
    *,
    magic: Any = LEGACY_MAGIC,
    protocol: Any = LEGACY_PROTOCOL,
    sys_info: Any = None,
    keys: Any = None,
    numel_headers: dict[str, int] | None = None,
    object_pickle: bytes | None = None,
) -> bytes:
    """The legacy ``torch.save`` container: five pickles, then each storage's bytes."""
    storages = storages_in(obj)
    if sys_info is None:
        sys_info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}
    out = bytearray()
    out += dumps(magic) + dumps(protocol) + dumps(sys_info)
    out += object_pickle if object_pickle is not None else dumps(obj)
    out += dumps([s.key for s in storages] if keys is None else keys)
    for s in storages:
        numel = (numel_headers or {}).get(s.key, s.numel)
        out += struct.pack("<q", numel) + s.payload()
    return bytes(out)


@dataclass
class Entry:
    """One zip member as written: every header field can be overridden."""

    name: str
    data: bytes  # the bytes stored (already compressed when method is not 0)
    method: int = 0
    flags: int = 0
    crc: int | None = None  # None: CRC-32 of data (right for stored entries)
    file_size: int | None = None  # None: len(data)


def zip_bytes(entries: list[Entry]) -> bytes:
    """A zip archive (no zip64) holding ``entries`` exactly as given."""
    out = bytearray()
    central = bytearray()
    for e in entries:
        name = e.name.encode()
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        size = len(e.data) if e.file_size is None else e.file_size
        offset = len(out)
        fields = (20, e.flags, e.method, 0, 0x21, crc, len(e.data), size, len(name), 0)
        out += b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", *fields) + name + e.data
        central += b"PK\x01\x02" + struct.pack("<HHHHHHIIIHHHHHII", 20, *fields, 0, 0, 0, 0, offset)
        central += name
    start = len(out)
    out += central
    count = min(len(entries), 0xFFFE)  # readers walk the directory by its size, not count
    out += b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, len(central), start, 0)
    return bytes(out)


def zip_entries(obj: Any, *, byteorder: bytes | None = b"little", pickle: bytes | None = None):
    """The members torch writes for ``obj`` (under ``archive/``), as a list to modify."""
    entries = [Entry("archive/data.pkl", dumps(obj) if pickle is None else pickle)]
    if byteorder is not None:
        entries.append(Entry("archive/byteorder", byteorder))
    for s in storages_in(obj):
        entries.append(Entry(f"archive/data/{s.key}", s.payload()))
    entries.append(Entry("archive/version", b"3\n"))
    return entries


def zip_file(obj: Any, **kwargs: Any) -> bytes:
    """The zip ``torch.save`` container of ``obj``."""
    return zip_bytes(zip_entries(obj, **kwargs))


def deflate_bomb(nbytes: int, step: int = 1 << 20) -> bytes:
    """A raw deflate stream that inflates to ``nbytes`` zeros (a multiple of ``step``),
    made from one independently compressed block repeated, so it is quick to build."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(step)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * (nbytes // step) + b"\x03\x00"  # final empty fixed-Huffman block


def state_dict(shapes: dict[str, tuple[int, ...]]) -> OrderedDict:
    """A state dict of zero float32 tensors, one storage each, with the given shapes."""
    out = OrderedDict()
    for i, (name, shape) in enumerate(shapes.items()):
        numel = int(np.prod(shape))
        out[name] = Tensor(Storage(str(i), numel), tuple(shape))
    return out
