"""The pickle machine behind the checkpoint reader, and the reader's last-resort errors."""

import pickle
from collections import OrderedDict

import pytest

from jaxdark.errors import CheckpointError
from jaxdark.weights.pytorch import reader, safe_pickle
from tests.support import torch_files as tf

PLAIN = {
    "text": "dark ünïcode",
    "numbers": [0, 1, -1, 255, 65535, 2**31 - 1, -(2**31), 2**70, -(2**200), 1.5, -0.0],
    "flags": (True, False, None),
    "raw": b"\x00\xff" * 10,
    "nested": {"a": [1, (2, 3), {"b": ()}], 7: "int key", 2.5: "float key"},
    "shared": None,
}
PLAIN["shared"] = [PLAIN["numbers"], PLAIN["numbers"]]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_what_python_writes(protocol):
    plain = dict(PLAIN)
    if protocol == 2:  # protocol 2 writes bytes as a call of _codecs.encode: refused
        del plain["raw"]
    data = pickle.dumps(plain, protocol=protocol)
    obj, end = safe_pickle.load(data, source="p", factories={})
    assert obj == plain
    assert obj["shared"][0] is obj["shared"][1]  # the memo keeps sharing
    assert end == len(data)


def test_consecutive_pickles_and_end_position():
    data = pickle.dumps(1, protocol=2) + pickle.dumps("two", protocol=2)
    first, pos = safe_pickle.load(data, source="p", factories={})
    second, end = safe_pickle.load(data, source="p", factories={}, pos=pos)
    assert (first, second, end) == (1, "two", len(data))


def test_factories_are_called_and_names_without_factory_are_not():
    factories = {("m", "make"): lambda *a: ["made", *a], ("m", "name_only"): None}
    obj, _ = safe_pickle.load(
        tf.dumps(tf.Call("m", "make", (1, 2))), source="s", factories=factories
    )
    assert obj == ["made", 1, 2]
    with pytest.raises(CheckpointError, match=r"^s: refusing to call m\.name_only"):
        safe_pickle.load(tf.dumps(tf.Call("m", "name_only")), source="s", factories=factories)
    with pytest.raises(CheckpointError, match=r"^s: refusing to load global 'm\.other'"):
        safe_pickle.load(tf.dumps(tf.Global("m", "other")), source="s", factories=factories)


def test_operation_limit():
    data = b"\x80\x02" + b"N0" * 50 + b"N."
    assert safe_pickle.load(data, source="p", factories={}, max_ops=200)[0] is None
    with pytest.raises(CheckpointError, match="more than 100 pickle operations"):
        safe_pickle.load(data, source="p", factories={}, max_ops=100)


def test_rebuild_shares_and_limits_depth():
    inner = [1]
    out = safe_pickle.rebuild(
        {"a": inner, "b": (inner, 2)}, lambda x: x * 10, source="s", max_depth=5
    )
    assert out == {"a": [10], "b": ([10], 20)}
    assert out["a"] is out["b"][0]
    deep: list = []
    for _ in range(6):
        deep = [deep]
    with pytest.raises(CheckpointError, match="^s: nesting deeper than 5 levels$"):
        safe_pickle.rebuild(deep, lambda x: x, source="s", max_depth=5)


def test_describe_never_expands_untrusted_values():
    assert safe_pickle.describe(2**4000) == "an integer of 4001 bits"
    assert safe_pickle.describe("x" * 1000).endswith("...'")
    assert safe_pickle.describe([[1] * 10] * 10) == "a list"


def test_permission_error_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    path.write_bytes(tf.legacy_file(OrderedDict(w=tf.Tensor(tf.Storage("0", 4), (4,)))))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reader, "open", denied, raising=False)
    with pytest.raises(CheckpointError, match=rf"^{path}: cannot read \(Permission denied\)$"):
        reader.read_torch_checkpoint(path)


def test_memory_error_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    path.write_bytes(tf.zip_file(OrderedDict(w=tf.Tensor(tf.Storage("0", 4), (4,)))))

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(reader.np, "frombuffer", exhausted)
    with pytest.raises(CheckpointError, match=rf"^{path}: not enough memory to read it$"):
        reader.read_torch_checkpoint(path)


@pytest.mark.parametrize("writer", [tf.legacy_file, tf.zip_file], ids=["legacy", "zip"])
def test_views_shared_storage_and_big_endian(tmp_path, writer):
    s = tf.Storage("0", 6, data=bytes(range(24)))
    obj = OrderedDict(
        a=tf.Tensor(s, (2, 3)), t=tf.Tensor(s, (3, 2), (1, 3)), b=tf.Tensor(s, (2,), (2,), 1)
    )
    path = tmp_path / "v.pth"
    path.write_bytes(writer(obj))
    out = reader.read_torch_checkpoint(path)
    flat = out["a"].reshape(-1)
    assert (out["t"] == out["a"].T).all()
    assert (out["b"] == flat[[1, 3]]).all()
    if writer is tf.zip_file:
        entries = tf.zip_entries(obj, byteorder=b"big")
        path.write_bytes(tf.zip_bytes(entries))
        big = reader.read_torch_checkpoint(path)["a"]
        assert (big == out["a"].byteswap()).all()
