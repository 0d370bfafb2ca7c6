"""The restricted PyTorch checkpoint reader: both formats, layouts, and hostile files."""

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import ml_dtypes
import numpy as np
import pytest

from jaxdark.errors import CheckpointError
from jaxdark.weights.pytorch.reader import (
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    extract_state_dict,
    read_torch_checkpoint,
)

torch = pytest.importorskip("torch")


def sample_state_dict():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    return OrderedDict(
        f32=torch.randn(3, 4, 5, generator=g),
        f16=torch.randn(7, generator=g).half(),
        bf16=torch.randn(2, 3, generator=g).bfloat16(),
        f64=torch.randn(4, generator=g).double(),
        i64=torch.arange(10),
        u8=torch.arange(5, dtype=torch.uint8),
        flag=torch.tensor([True, False, True]),
        transposed=base.t(),  # non-contiguous strides
        sliced=base[2:4, 1:],  # storage offset, shared storage
        scalar=torch.tensor(3.5),
        empty=torch.zeros(0, 3),
        param=torch.nn.Parameter(torch.ones(2, 2)),
    )


def expected_array(t):
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(ml_dtypes.bfloat16)
    return t.numpy()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_round_trip_all_dtypes_and_layouts(tmp_path, zip_format):
    sd = sample_state_dict()
    path = tmp_path / "ckpt.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    loaded = read_torch_checkpoint(path)
    assert isinstance(loaded, OrderedDict)
    assert list(loaded) == list(sd)
    for key, t in sd.items():
        exp = expected_array(t)
        assert loaded[key].dtype == exp.dtype, key
        assert loaded[key].shape == exp.shape, key
        np.testing.assert_array_equal(loaded[key], exp, err_msg=key)


@pytest.mark.parametrize("wrapper", ["bare", "model", "state_dict", "module"])
def test_extract_state_dict_layouts(tmp_path, wrapper):
    sd = OrderedDict(a=torch.ones(2), b=torch.zeros(3))
    obj = {
        "bare": sd,
        "model": {"model": sd, "epoch": 3},
        "state_dict": {"state_dict": sd, "optimizer": {"lr": 0.1}},
        "module": OrderedDict((f"module.{k}", v) for k, v in sd.items()),
    }[wrapper]
    path = tmp_path / "c.pth"
    torch.save(obj, path)
    out = extract_state_dict(read_torch_checkpoint(path))
    assert sorted(out) == ["a", "b"]
    np.testing.assert_array_equal(out["a"], np.ones(2, np.float32))


def test_extract_state_dict_rejects_non_tensors():
    with pytest.raises(CheckpointError, match="entry 'x' is not a named tensor"):
        extract_state_dict({"x": 3})
    with pytest.raises(CheckpointError, match="expected a dict of tensors, got list"):
        extract_state_dict([1, 2])


class _Evil:
    """Pickles to a call of os.system; loading it must never run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_code_in_legacy_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": _Evil(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match=r"refusing to load global '(posix|os)\.system'"):
        read_torch_checkpoint(path)
    assert not marker.exists()


def test_refuses_code_in_zip_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    bad = tmp_path / "evil.pth"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps(OrderedDict(w=_Evil(marker)), protocol=2)
            dst.writestr(item, data)
    with pytest.raises(CheckpointError, match="refusing to load global"):
        read_torch_checkpoint(bad)
    assert not marker.exists()


def test_refuses_other_torch_globals(tmp_path):
    path = tmp_path / "m.pth"
    torch.save(torch.nn.Linear(2, 2), path)  # a whole module, not a state dict
    with pytest.raises(CheckpointError, match="refusing to load global 'torch.nn"):
        read_torch_checkpoint(path)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_truncated_file(tmp_path, zip_format):
    path = tmp_path / "t.pth"
    torch.save({"w": torch.randn(1000)}, path, _use_new_zipfile_serialization=zip_format)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 500])
    with pytest.raises(CheckpointError, match=str(path)):
        read_torch_checkpoint(path)


def test_official_file_truncated(tmp_path, official_weights):
    raw = official_weights.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_torch_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"hello, not a checkpoint", "neither zip nor pickle"),
        (b"PK\x03\x04garbage", "corrupt zip"),
        (b"\x80\x02garbage", "corrupt or unsupported pickle"),
        (pickle.dumps(12345, protocol=2), "bad magic number"),
    ],
)
def test_not_a_checkpoint(tmp_path, content, match):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        read_torch_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        read_torch_checkpoint(tmp_path / "nope.pth")


def _legacy_file(path, numel_in_storage, size, stride, offset=0):
    """A hand-made legacy checkpoint with one tensor viewing a float storage."""

    class Storage:
        pass

    storage = Storage()

    class Tensor:
        def __reduce__(self):
            hooks = OrderedDict()
            return (
                torch._utils._rebuild_tensor_v2,
                (storage, offset, size, stride, False, hooks),
            )

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is storage:
                return ("storage", torch.FloatStorage, "0", "cpu", numel_in_storage)
            return None

    buf = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    P(buf, protocol=2).dump(OrderedDict(w=Tensor()))
    pickle.dump(["0"], buf, protocol=2)
    buf.write(struct.pack("<q", numel_in_storage))
    buf.write(np.arange(numel_in_storage, dtype=np.float32).tobytes())
    path.write_bytes(buf.getvalue())


def test_handmade_legacy_view(tmp_path):
    path = tmp_path / "v.pth"
    _legacy_file(path, 12, (2, 3), (1, 2), offset=4)
    out = read_torch_checkpoint(path)["w"]
    np.testing.assert_array_equal(out, [[4, 6, 8], [5, 7, 9]])


def test_tensor_past_its_storage_is_refused(tmp_path):
    path = tmp_path / "oob.pth"
    _legacy_file(path, 4, (10,), (1,))
    with pytest.raises(CheckpointError, match="reaches past its storage"):
        read_torch_checkpoint(path)
