"""Hostile and careless checkpoints, through ``jaxdark convert`` and ``load_model``.

Every file is built here with `tests.support.torch_files` (plain ``struct``/``zlib`` writing of
both ``torch.save`` formats; nothing binary is committed). All cases run in one worker
process (`tests.support.hostile.run_cases`) under an address-space limit, each through the CLI
(``jaxdark convert SRC DST``) and the API (``jaxdark.load_model(SRC)``). Each must end
with exit status 2, no traceback, exactly one line naming the file and saying why,
nothing at DST, the input unchanged, within seconds and a bounded heap.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support import torch_files as tf
from tests.support.hostile import REPO_ROOT, Case, Expect, check_command, run_cases
from tests.support.torch_files import Call, Entry, Global, Op, Storage, Tensor

MARKER = "HOSTILE_MARKER"  # code-execution cases try to create this file
CASE_SECONDS = 15.0  # each case, under load on 2 cores (the stray key took 246 s before)
HEAP_SLACK = 96 << 20  # heap a failing case may use besides a small multiple of the file
PRELOAD = [
    "jaxdark.cli",
    "jaxdark.cli.convert",
    "jaxdark.weights.convert",
]  # imported before timing


def reference_shapes() -> dict[str, tuple[int, ...]]:
    """Torch name -> shape of every tensor of the published model (no weights drawn)."""
    from jaxdark.models.lamba2021 import create_model
    from jaxdark.weights.convert import LEAVES, _param_refs, conv_table, flat_key

    model = create_model(abstract=True)
    refs = _param_refs(model)
    shapes = {}
    for prefix, path in conv_table(model.dense_layer_counts):
        for leaf, (flax_leaf, _, to_torch) in LEAVES.items():
            key = flat_key((*path, flax_leaf))
            if key in refs:
                stand_in = np.broadcast_to(np.float32(0), refs[key].shape)
                shapes[f"{prefix}.{leaf}"] = tuple(to_torch(stand_in).shape)
    return shapes


# --- the cases: name -> builder(dir, shapes) -> (file bytes, reason regex) -------------
# Builders return the bytes of the file and a regex the error line must match. "both"
# builders take the container writer (legacy or zip) and are run in both formats.

Builder = Callable[[Callable, dict], tuple[bytes, str]]
BOTH: dict[str, Builder] = {}
ONE: dict[str, Callable[[dict], tuple[bytes, str]]] = {}


def both(name: str):
    def register(f):
        BOTH[name] = f
        return f

    return register


def one(name: str):
    def register(f):
        ONE[name] = f
        return f

    return register


def write(fmt, obj=None, raw: bytes | None = None) -> bytes:
    """``obj`` in format ``fmt``; ``raw`` replaces the object pickle."""
    if fmt is tf.legacy_file:
        return tf.legacy_file(obj, object_pickle=raw)
    return tf.zip_file(obj, pickle=raw)


def ref_dict(shapes, **changes) -> OrderedDict:
    """The published model's state dict (zeros), with entries replaced or added."""
    sd = tf.state_dict(shapes)
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            del sd[key]
        else:
            sd[key] = value
    return sd


def f32(n: int, key: str = "0") -> Storage:
    return Storage(key, n)


# Code execution: every one must be refused before anything runs.
def _code(call: Call | Op, reason: str = "refusing to (load global|call)|unsupported pickle"):
    return lambda fmt, shapes: (write(fmt, raw=tf.dumps({"w": call})), reason)


for _name, _call in {
    "os_system": Call("os", "system", (f"touch {MARKER}",)),
    "posix_system": Call("posix", "system", (f"touch {MARKER}",)),
    "builtins_eval": Call("builtins", "eval", (f"open('{MARKER}', 'w')",)),
    "builtins_exec": Call("builtins", "exec", (f"open('{MARKER}', 'w')",)),
    "subprocess_popen": Call("subprocess", "Popen", (["touch", MARKER],)),
    "builtins_getattr": Call("builtins", "getattr", (Global("os", "path"), "join")),
    "import_module": Call("importlib", "import_module", ("os",)),
    "numpy_reconstruct": Call("numpy.core.multiarray", "_reconstruct", ()),
    "nested_torch_load": Call("torch", "load", (MARKER,)),
    "call_storage_type": Call("torch", "FloatStorage", (10,)),
    "rebuild_from_os_system": Call(
        "torch._utils", "_rebuild_tensor_v2", (Global("os", "system"), 0, (1,), (1,))
    ),
    "stack_global": Op(b"X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x93)R"),
    "inst_opcode": Op(b"(X\x04\x00\x00\x00echoios\nsystem\n"),
    "obj_opcode": Op(b"(cos\nsystem\nX\x04\x00\x00\x00echoo"),
    "newobj_opcode": Op(b"ccollections\nOrderedDict\n)\x81"),
    "ext1_opcode": Op(b"\x82\x01"),
    "text_persid": Op(b"P0\n"),
}.items():
    BOTH[f"code_{_name}"] = _code(_call)


# Resources: memory bounded before allocating, work linear in the file.
@both("stride0_1p2GB")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(1), (300_000_000,), (0,))}), "stride 0"


@both("stride0_16GiB")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(1), (2**32,), (0,))}), "stride 0"


@both("overlapping_view")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(2000), (1000, 1000), (1, 1))}), "overlapping"


@both("view_past_storage")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), (10,))}), "reaches past its storage"


@both("negative_offset")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), (2,), (1,), -1)}), "offset is -1"


@both("views_300_of_4MiB")
def _(fmt, shapes):
    s = f32(1 << 20)
    return write(fmt, {f"v{i}": Tensor(s, (1 << 20,)) for i in range(300)}), "4 times"


@both("numel_2_61")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(Storage("0", 2**61, data=b""), (2,))}), "declares"


@both("numel_2_62")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(Storage("0", 2**62, data=b""), (2,))}), "declares"


@both("stride_2_70")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), (2,), (2**70,))}), "too large"


@both("size_2_63")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), (2**63,), (1,))}), "too large"


@both("size_2_70_empty")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), (2**70, 0), (1, 1))}), "too large"


@both("size_string")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), ("3",), (1,))}), "size contains '3'"


@both("size_float")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), (3.0,), (1,))}), "size contains 3.0"


@both("size_not_a_tuple")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), 3, (1,))}), "size is 3"


@both("ndim_100")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), (1,) * 100, (1,) * 100)}), "at most 32"


@both("sizes_strides_differ")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), (2, 2), (1,))}), "2 sizes but 1 strides"


@both("deep_lists")
def _(fmt, shapes):
    n = 5_000  # far past Python's recursion limit (1000), which the old reader hit
    return write(fmt, raw=tf.dumps({"w": Op(b"]" * n + b"a" * (n - 1))})), "nesting deeper"


@both("deep_tuples")
def _(fmt, shapes):
    return write(fmt, raw=tf.dumps({"w": Op(b")" + b"\x85" * 5_000)})), "nesting deeper"


@both("deep_tuple_key")
def _(fmt, shapes):
    raw = b"\x80\x02}" + b")" + b"\x85" * 5_000 + b"Ns."
    return write(fmt, raw=raw), "dict key is a tuple"


@both("self_containing_list")
def _(fmt, shapes):
    return write(fmt, raw=tf.dumps({"w": Op(b"]\x94h\x00a")})), "contains itself"


@both("shared_2_60_structure")
def _(fmt, shapes):
    ops = bytearray(b"]\x94")
    for i in range(28):  # 2**28 paths through 29 lists, each list [previous, previous]
        ops += b"0(h" + bytes([i]) + b"h" + bytes([i]) + b"l\x94"
    return write(fmt, raw=tf.dumps({"w": Op(bytes(ops))})), "not a named tensor"


@one("zip_70000_entries")
def _(shapes):
    entries = tf.zip_entries({"w": Tensor(f32(4), (4,))})
    entries += [Entry(f"archive/x{i}", b"") for i in range(70_000)]
    return tf.zip_bytes(entries), "more than 65536 entries"


@both("string_length_2_31")
def _(fmt, shapes):
    return write(fmt, raw=b"\x80\x02X" + struct.pack("<I", 2**31) + b"abc."), "asks for"


@both("bytes8_length_2_60")
def _(fmt, shapes):
    return write(fmt, raw=b"\x80\x02\x8e" + struct.pack("<Q", 2**60) + b"abc."), "asks for"


@both("long4_length_2_31")
def _(fmt, shapes):
    return write(fmt, raw=b"\x80\x02\x8b" + struct.pack("<i", 2**31 - 1) + b"."), "asks for"


@both("frame_length_2_60")
def _(fmt, shapes):
    return write(fmt, raw=b"\x80\x04\x95" + struct.pack("<Q", 2**60) + b"N."), "frame"


@both("memo_get_missing")
def _(fmt, shapes):
    return write(fmt, raw=b"\x80\x02h\x07."), "memo entry 7"


@both("stack_underflow")
def _(fmt, shapes):
    return write(fmt, raw=b"\x80\x02}s."), "stack underflow"


@both("unknown_opcode")
def _(fmt, shapes):
    return write(fmt, raw=b"\x80\x02\xff."), "opcode"


@both("pickle_protocol_9")
def _(fmt, shapes):
    return write(fmt, raw=b"\x80\x09N."), "protocol 9"


@both("storage_view_pid")
def _(fmt, shapes):
    pid = ("storage", Global("torch", "FloatStorage"), "0", "cpu", 4, ("1", 0, 2))
    return write(fmt, raw=tf.dumps({"w": Op(tf.dumps(pid)[2:-1] + b"Q")})), "views"


@both("storage_declared_twice")
def _(fmt, shapes):
    a, b = Storage("0", 4), Storage("0", 8)
    return write(fmt, {"a": Tensor(a, (4,)), "b": Tensor(b, (8,))}), "twice"


@both("bare_storage")
def _(fmt, shapes):
    return write(fmt, {"w": f32(4)}), "bare storage"


@both("global_as_value")
def _(fmt, shapes):
    return write(fmt, raw=tf.dumps({"w": Global("torch", "FloatStorage")})), "reference to"


@both("not_a_dict")
def _(fmt, shapes):
    return write(fmt, [Tensor(f32(4), (4,))]), "expected a dict of tensors"


@both("module_prefix_duplicate")
def _(fmt, shapes):
    return write(fmt, {"w": Tensor(f32(4), (4,)), "module.w": Tensor(f32(4, "1"), (4,))}), (
        "appears twice"
    )


# Model level (conversion): one line naming the file, no huge model built.
@both("stray_dense_layer_key")
def _(fmt, shapes):
    sd = ref_dict(shapes, RDB1__dense_layers__2000__conv__1__weight_v=Tensor(f32(1, "x"), (1,)))
    return write(fmt, sd), "unexpected key RDB1.dense_layers.2000.conv.1.weight_v"


@both("features_0")
def _(fmt, shapes):
    sd = ref_dict(shapes, conv32x__1__0__weight_v=Tensor(f32(0, "x"), (0, 128, 3, 3)))
    return write(fmt, sd), "features is 0"


@both("features_40")
def _(fmt, shapes):
    sd = ref_dict(shapes, conv32x__1__0__weight_v=Tensor(f32(40 * 128 * 9, "x"), (40, 128, 3, 3)))
    return write(fmt, sd), "features is 40, expected a multiple of 16"


@both("features_2_40_empty")
def _(fmt, shapes):
    sd = ref_dict(shapes, conv32x__1__0__weight_v=Tensor(f32(0, "x"), (2**40, 0, 3, 3)))
    return write(fmt, sd), "features is 1099511627776"


@both("growth_0")
def _(fmt, shapes):
    sd = ref_dict(
        shapes, RDB1__dense_layers__0__conv__0__weight_v=Tensor(f32(0, "x"), (0, 64, 3, 3))
    )
    return write(fmt, sd), "growth is 0"


@both("weight_0d")
def _(fmt, shapes):
    sd = ref_dict(shapes, conv32x__1__0__weight_v=Tensor(f32(1, "x"), ()))
    return write(fmt, sd), r"conv32x.1.0.weight_v has shape \(\)"


@both("block_numbering_gap")
def _(fmt, shapes):
    sd = OrderedDict((k.replace("RDB2.", "RDB4."), v) for k, v in ref_dict(shapes).items())
    return write(fmt, sd), "not numbered 1..N"


@both("missing_key")
def _(fmt, shapes):
    return write(fmt, ref_dict(shapes, conv2x__0__bias=None)), "missing key conv2x.0.bias"


@both("shape_mismatch")
def _(fmt, shapes):
    sd = ref_dict(shapes, conv2x__0__weight_v=Tensor(f32(12 * 4 * 25, "x"), (12, 4, 5, 4)))
    return write(fmt, sd), "shape mismatch for conv2x.0.weight_v"


@both("integer_weights")
def _(fmt, shapes):
    sd = ref_dict(shapes, conv2x__0__bias=Tensor(Storage("b", 12, "LongStorage"), (12,)))
    return write(fmt, sd), "dtype int64"


# Zip container.
def _zip(shapes, change, obj=None):
    obj = {"w": Tensor(f32(4), (4,))} if obj is None else obj
    entries = tf.zip_entries(obj)
    change({e.name: e for e in entries}, entries)
    return tf.zip_bytes(entries)


@one("zip_crc_error")
def _(shapes):
    return _zip(shapes, lambda e, _: setattr(e["archive/data/0"], "crc", 1234)), "corrupt"


@one("zip_compression_99")
def _(shapes):
    return _zip(shapes, lambda e, _: setattr(e["archive/data/0"], "method", 99)), "method 99"


@one("zip_encrypted_flag")
def _(shapes):
    return _zip(shapes, lambda e, _: setattr(e["archive/data/0"], "flags", 1)), "encrypted"


@one("zip_bomb_declared_1GiB")
def _(shapes):
    def bomb(e, _):
        e["archive/data/0"].data = tf.deflate_bomb(1 << 30)
        e["archive/data/0"].method = 8
        e["archive/data/0"].crc = 0
        e["archive/data/0"].file_size = 1 << 30

    obj = {"w": Tensor(Storage("0", 1 << 28), (1 << 28,))}
    return _zip(shapes, bomb, obj), "declares|4 times"


@one("zip_bomb_lying_size")
def _(shapes):
    def bomb(e, _):
        e["archive/data/0"].data = tf.deflate_bomb(1 << 30)
        e["archive/data/0"].method = 8
        e["archive/data/0"].crc = zlib.crc32(bytes(4096))
        e["archive/data/0"].file_size = 4096

    obj = {"w": Tensor(Storage("0", 1024), (1024,))}
    return _zip(shapes, bomb, obj), "missing key"


@one("zip_pickle_declared_2GiB")
def _(shapes):
    return _zip(shapes, lambda e, _: setattr(e["archive/data.pkl"], "file_size", 2**31)), (
        "4 times"
    )


@one("zip_truncated")
def _(shapes):
    raw = _zip(shapes, lambda e, _: None)
    return raw[: len(raw) // 2], "corrupt zip"


@one("zip_no_data_pkl")
def _(shapes):
    return _zip(shapes, lambda e, entries: entries.pop(0)), "no single data.pkl"


@one("zip_two_data_pkl")
def _(shapes):
    return _zip(shapes, lambda e, es: es.append(Entry("x/data.pkl", b""))), "no single data.pkl"


@one("zip_duplicate_entry")
def _(shapes):
    return _zip(shapes, lambda e, es: es.append(Entry("archive/data/0", bytes(16)))), "twice"


@one("zip_storage_missing")
def _(shapes):
    return _zip(shapes, lambda e, es: es.remove(e["archive/data/0"])), "is missing"


@one("zip_storage_size_mismatch")
def _(shapes):
    return _zip(shapes, lambda e, _: setattr(e["archive/data/0"], "data", bytes(12))), (
        "holds 12 bytes"
    )


@one("zip_byteorder_middle")
def _(shapes):
    return _zip(shapes, lambda e, _: setattr(e["archive/byteorder"], "data", b"middle")), (
        "byte-order record is 'middle'"
    )


@one("zip_byteorder_binary")
def _(shapes):
    return _zip(shapes, lambda e, _: setattr(e["archive/byteorder"], "data", b"\xff\xfe\x00")), (
        "byte-order record"
    )


@one("zip_garbage_after_header")
def _(shapes):
    return b"PK\x03\x04" + bytes(range(256)) * 4, "corrupt zip"


# Legacy container.
@one("legacy_bad_magic")
def _(shapes):
    return tf.legacy_file({"w": Tensor(f32(4), (4,))}, magic=12345), "bad magic"


@one("legacy_protocol_1000")
def _(shapes):
    return tf.legacy_file({"w": Tensor(f32(4), (4,))}, protocol=1000), "protocol version 1000"


@one("legacy_byteorder_yes")
def _(shapes):
    info = {"protocol_version": 1001, "little_endian": "yes"}
    return tf.legacy_file({"w": Tensor(f32(4), (4,))}, sys_info=info), "byte-order record"


@one("legacy_keys_not_a_list")
def _(shapes):
    return tf.legacy_file({"w": Tensor(f32(4), (4,))}, keys={"0": 1}), "storage key list"


@one("legacy_unknown_key")
def _(shapes):
    return tf.legacy_file({"w": Tensor(f32(4), (4,))}, keys=["9"]), "storage key list"


@one("legacy_numel_header_mismatch")
def _(shapes):
    raw = tf.legacy_file({"w": Tensor(f32(4), (4,))}, numel_headers={"0": 5})
    return raw, "holds 5 elements"


@one("legacy_truncated_data")
def _(shapes):
    return tf.legacy_file({"w": Tensor(f32(1000), (1000,))})[:-100], "truncated"


@one("legacy_storage_in_header")
def _(shapes):
    info = {"x": Tensor(f32(4), (4,))}
    return tf.legacy_file({"w": Tensor(f32(4), (4,))}, sys_info=info), "in the header"


@one("empty_file")
def _(shapes):
    return b"", "neither zip nor pickle"


@one("one_byte_pickle")
def _(shapes):
    return b"\x80", "truncated|protocol"


@one("text_file")
def _(shapes):
    return b"this is not a checkpoint\n", "neither zip nor pickle"


# Poisoning: each tries to change an allow-listed global for the rest of the process.
POISON: dict[str, bytes] = {
    "build_on_storage_type": b"ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeNsb",
    "build_slots_on_function": (
        b"ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__)s\x86b"
    ),
    "build_on_ordered_dict_class": b"ccollections\nOrderedDict\n}X\x03\x00\x00\x00fooNsb",
    "setitem_on_class": b"ccollections\nOrderedDict\nX\x01\x00\x00\x00kNs",
    "setitems_on_function": b"ctorch._utils\n_rebuild_tensor_v2\n(X\x01\x00\x00\x00kNu",
    "append_on_global": b"ccollections\nOrderedDict\nNa",
    "build_on_tensor": tf.dumps(Tensor(f32(4), (4,)))[2:-1] + b"}b",
    "build_on_storage": tf.dumps(f32(4))[2:-1] + b"}b",
}


def params_digest(path: str) -> str:
    """sha256 over the parameters of ``load_model(path)`` (run inside the worker)."""
    from jaxdark.weights.convert import model_params
    from jaxdark.weights.load import load_model

    h = hashlib.sha256()
    for key, value in sorted(model_params(load_model(path)).items()):
        h.update(key.encode())
        h.update(np.ascontiguousarray(value, np.float32).tobytes())
    return h.hexdigest()


def _expect(path: Path, reason: str, dst: Path | None = None, *, seconds=CASE_SECONDS) -> Expect:
    mine = path.is_file() and not str(path).startswith("/proc/")
    size = path.stat().st_size if mine else 0
    return Expect(
        exit_code=2,
        names=(str(path),),
        reason=reason,
        unchanged=(path,) if mine else (),
        absent=(dst,) if dst else (),
        max_seconds=seconds,
        max_peak_bytes=HEAP_SLACK + 8 * size,
    )


def file_cases(path: Path, reason: str, dst: Path) -> list[Case]:
    """The CLI and the API case of one input file."""
    return [
        Case(
            f"cli:{path.name}",
            {"cli": ["convert", str(path), str(dst)]},
            _expect(path, reason, dst),
        ),
        Case(
            f"api:{path.name}",
            {"call": "jaxdark.weights.load:load_model", "args": [str(path)]},
            _expect(path, reason),
        ),
    ]


CONVERTED_EDITS: dict[str, tuple[Callable[[dict], object], str]] = {
    "meta_features_0": (lambda m: m["model_config"].update(features=0), "features is 0"),
    "meta_features_string": (
        lambda m: m["model_config"].update(features="64"),
        "features is '64'",
    ),
    "meta_features_40": (lambda m: m["model_config"].update(features=40), "multiple of 16"),
    "meta_growth_float": (lambda m: m["model_config"].update(growth=8.0), "growth is 8.0"),
    "meta_config_extra_key": (
        lambda m: m["model_config"].update(dropout=0.1),
        "unknown key 'dropout'",
    ),
    "meta_extra_key": (lambda m: m.update(comment="hi"), "unknown key 'comment'"),
    "meta_missing_key": (lambda m: m.pop("param_count"), "lacks 'param_count'"),
    "meta_dense_layers_int": (
        lambda m: m["model_config"].update(dense_layers=2),
        "dense_layers is 2",
    ),
    "meta_dense_layers_1000": (
        lambda m: m["model_config"].update(dense_layers=[1000]),
        "1000 dense layers",
    ),
    "meta_dense_layers_string": (
        lambda m: m["model_config"].update(dense_layers=[2, "x"]),
        "'x' dense layers",
    ),
    "meta_param_count_wrong": (lambda m: m.update(param_count=5), "param_count is 5"),
    "meta_param_count_huge": (lambda m: m.update(param_count=10**30), "param_count is"),
    "meta_format_version_2": (lambda m: m.update(format_version=2), "format version 2"),
    "meta_sha_not_hex": (lambda m: m.update(source_sha256="zz"), "source_sha256 is 'zz'"),
    "meta_source_number": (lambda m: m.update(source=3), "source is 3"),
    "meta_not_a_dict": (lambda m: [1, 2], "not a jaxdark parameter checkpoint"),
    "meta_config_shape_change": (
        lambda m: m["model_config"].update(features=32) or m.update(param_count=_SMALL_32),
        "shape mismatch for conv32x.1.bias|cannot restore parameters",
    ),
}
SMALL = {"features": 16, "growth": 8, "dense_layers": [2]}
_SMALL_32 = 0  # parameter count of SMALL with features 32, filled in by make_converted


def make_converted(root: str) -> str:
    """Write a converted checkpoint of a small model and one broken copy per edit (worker)."""
    global _SMALL_32
    from jaxdark.models.lamba2021 import count_params, create_model
    from jaxdark.weights.convert import _param_refs, assign_params, save_converted

    root_path = Path(root)
    good = root_path / "good_ckpt"
    model = create_model(abstract=True, **SMALL)  # zeros: quicker than drawing weights
    assign_params(model, {k: np.zeros(v.shape, np.float32) for k, v in _param_refs(model).items()})
    save_converted(model, good)
    _SMALL_32 = count_params(create_model(abstract=True, **{**SMALL, "features": 32}))
    meta_file = good / "metadata" / "metadata"
    for name, (edit, _) in CONVERTED_EDITS.items():
        dst = root_path / name
        shutil.copytree(good, dst)
        meta = json.loads(meta_file.read_text())
        replaced = edit(meta)
        if isinstance(replaced, list):
            meta = replaced
        (dst / "metadata" / "metadata").write_text(json.dumps(meta))
    broken = root_path / "meta_not_json"
    shutil.copytree(good, broken)
    (broken / "metadata" / "metadata").write_text("{not json")
    no_params = root_path / "meta_params_missing"
    shutil.copytree(good, no_params)
    shutil.rmtree(no_params / "params")
    return "ok"


# --- building and running ------------------------------------------------------------


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Build every case, run them all in one worker; name -> problems."""
    root = tmp_path_factory.mktemp("hostile")
    shapes = reference_shapes()
    cases: list[Case] = []
    for name, build in BOTH.items():
        for fmt, suffix in ((tf.legacy_file, "legacy"), (tf.zip_file, "zip")):
            raw, reason = build(fmt, shapes)
            path = root / f"{name}.{suffix}.pth"
            path.write_bytes(raw)
            cases += file_cases(path, reason, root / f"{name}.{suffix}.out")
    for name, build in ONE.items():
        raw, reason = build(shapes)
        path = root / f"{name}.pth"
        path.write_bytes(raw)
        cases += file_cases(path, reason, root / f"{name}.out")
    # Careless paths: missing, a FIFO (must not hang), unreadable, a directory, a newline.
    missing = root / "missing.pth"
    cases += file_cases(missing, "not found", root / "missing.out")
    fifo = root / "fifo.pth"
    os.mkfifo(fifo)
    cases += file_cases(fifo, "not a regular file", root / "fifo.out")
    cases += file_cases(Path("/proc/self/mem"), "cannot read", root / "procmem.out")
    empty_dir = root / "empty_dir.pth"
    empty_dir.mkdir()
    cases.append(
        Case(
            "api:empty_dir",
            {"call": "jaxdark.weights.load:load_model", "args": [str(empty_dir)]},
            _expect(empty_dir, "not a jaxdark checkpoint"),
        )
    )
    newline = root / "line\nbreak.pth"
    newline.write_bytes(b"not a checkpoint")
    for case in file_cases(newline, "neither zip nor pickle", root / "newline.out"):
        case.expect.names = (str(newline).replace("\n", "\\n"),)
        cases.append(case)
    # Converted directories with broken metadata (made inside the worker).
    cases.append(
        Case(
            "make_converted",
            {
                "call": "tests.weights.test_hostile_checkpoints:make_converted",
                "args": [str(root)],
                "raises": [],
            },
            Expect(exit_code=0, stderr_lines=None),
        )
    )
    for name, reason in [
        *((n, why) for n, (_, why) in CONVERTED_EDITS.items()),
        ("meta_not_json", "not a jaxdark checkpoint"),
        ("meta_params_missing", "cannot restore parameters"),
    ]:
        path = root / name
        cases.append(
            Case(
                f"api:{name}",
                {"call": "jaxdark.weights.load:load_model", "args": [str(path)]},
                Expect(names=(str(path),), reason=reason, max_seconds=CASE_SECONDS),
            )
        )
    # Control: the same writer's valid files convert (the cases above differ by one thing).
    for fmt, suffix in ((tf.legacy_file, "legacy"), (tf.zip_file, "zip")):
        path = root / f"valid.{suffix}.pth"
        path.write_bytes(fmt(ref_dict(shapes)))
        cases.append(
            Case(
                f"cli:{path.name}",
                {"cli": ["convert", str(path), str(root / f"valid.{suffix}.out")]},
                Expect(exit_code=0, stderr_lines=None, unchanged=(path,)),
            )
        )
    results = run_cases(cases, timeout=900, case_timeout=60, preload=PRELOAD)
    markers = [p for p in (REPO_ROOT / MARKER, Path.cwd() / MARKER) if p.exists()]
    return results, markers, root


CASE_NAMES = (
    [f"{n}.{s}.pth" for n in BOTH for s in ("legacy", "zip")]
    + [f"{n}.pth" for n in ONE]
    + ["missing.pth", "fifo.pth", "mem", "line\nbreak.pth"]
)


@pytest.mark.parametrize("name", CASE_NAMES, ids=lambda n: n.replace("\n", "_"))
@pytest.mark.parametrize("via", ["cli", "api"])
def test_hostile_file(suite, via, name):
    results, _, _ = suite
    assert results[f"{via}:{name}"].problems == []


@pytest.mark.parametrize(
    "name", [*CONVERTED_EDITS, "meta_not_json", "meta_params_missing", "empty_dir"]
)
def test_hostile_converted_directory(suite, name):
    results, _, _ = suite
    assert results["make_converted"].problems == []
    assert results[f"api:{name}"].problems == []


def test_valid_files_from_the_same_writer_convert(suite):
    results, _, root = suite
    for suffix in ("legacy", "zip"):
        assert results[f"cli:valid.{suffix}.pth"].problems == []
        assert (root / f"valid.{suffix}.out").is_dir()


def test_nothing_ran(suite):
    _, markers, _ = suite
    assert markers == []


def test_poisoning_leaves_later_loads_intact(tmp_path, official_weights):
    """Each poisoning attempt fails by name; the official weights then load unchanged,
    in the same process."""
    digest = {
        "call": "tests.weights.test_hostile_checkpoints:params_digest",
        "args": [str(official_weights)],
        "raises": [],
    }
    cases = [Case("before", digest, Expect(exit_code=0, stderr_lines=None))]
    for name, ops in POISON.items():
        path = tmp_path / f"{name}.pth"
        for fmt, suffix in ((tf.legacy_file, "legacy"), (tf.zip_file, "zip")):
            path = tmp_path / f"{name}.{suffix}.pth"
            path.write_bytes(write(fmt, raw=b"\x80\x02}(X\x01\x00\x00\x00w" + ops + b"u."))
            reason = "(BUILD|SETITEM|APPEND) on"
            cases += file_cases(path, reason, tmp_path / f"{name}.{suffix}.out")
    cases.append(Case("after", digest, Expect(exit_code=0, stderr_lines=None)))
    results = run_cases(cases, timeout=600, case_timeout=60, preload=PRELOAD)
    assert {k: r.problems for k, r in results.items() if r.problems} == {}
    before, after = results["before"].outcome.result, results["after"].outcome.result
    assert before is not None and before == after


def test_real_process_is_one_line(tmp_path):
    """The same contract through a real ``python -m jaxdark convert`` process."""
    path = tmp_path / "stride0.pth"
    path.write_bytes(tf.legacy_file({"w": Tensor(f32(1), (300_000_000,), (0,))}))
    dst = tmp_path / "out"
    argv = [sys.executable, "-m", "jaxdark", "convert", str(path), str(dst)]
    checked = check_command(argv, _expect(path, "stride 0", dst, seconds=120), timeout=120)
    assert checked.problems == []
