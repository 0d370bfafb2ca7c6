"""`jaxdark.export`: ONNX and StableHLO round trips, metadata, one-line errors, the ONNX example."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from flax import nnx

import jaxdark
from jaxdark import create_model
from jaxdark.cli import main
from jaxdark.export import ExportError, export
from jaxdark.fileio import sha256_of
from jaxdark.imaging.raw import pad_to_multiple, to_rggb
from jaxdark.weights.convert import save_converted
from tests.support.paths import REPO_ROOT

SIZES = [(1, 32, 32), (2, 64, 96), (1, 96, 64)]  # one non-square each way
META_KEYS = {
    "input_layout",
    "input_shape",
    "input",
    "output_layout",
    "output_shape",
    "value_range",
    "source_sha256",
    "parameters_sha256",
    "jaxdark_version",
    "size_multiple",
}


@pytest.fixture(scope="module")
def model():
    """A random network of a smaller variant (the builders read the sizes), its parameters
    drawn in NumPy: eager initialisation compiles one XLA program per operation."""
    config = {"features": 32, "growth": 16, "dense_layers": (2, 3)}
    net = create_model(abstract=True, **config)
    rng = np.random.default_rng(0)
    state = nnx.state(net, nnx.Param)
    drawn = jax.tree_util.tree_map_with_path(
        lambda path, leaf: jnp.asarray(
            rng.uniform(0.8, 1.2, leaf.shape)
            if "['g']" in jax.tree_util.keystr(path)
            else rng.normal(0.0, 0.1, leaf.shape),
            jnp.float32,
        ),
        state,
    )
    nnx.update(net, drawn)
    return net


@pytest.fixture(scope="module")
def reference(model):
    """``model(x)`` for a uniform random mosaic of each size in SIZES, jitted."""
    fn = jax.jit(lambda x: model(x))
    out = {}
    for b, h, w in SIZES:
        x = np.random.default_rng(h * w).uniform(0, 1, (b, h, w, 1)).astype(np.float32)
        out[(b, h, w)] = (x, np.asarray(fn(jnp.asarray(x))))
    return out


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    return export(model, tmp_path_factory.mktemp("onnx") / "net.onnx").path


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_round_trip_at_three_sizes(onnx_file, reference):
    proto = onnx.load(str(onnx_file))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    groups = sorted(
        a.i
        for n in proto.graph.node
        if n.op_type == "Conv"
        for a in n.attribute
        if a.name == "group"
    )
    assert groups.count(1) == len(groups) - 2 and groups[-2:] == [4, 128]
    modes = {a.s for n in proto.graph.node if n.op_type == "DepthToSpace" for a in n.attribute}
    assert modes >= {b"CRD"} and b"DCR" not in modes
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim[:3]]
    assert dims == ["batch", "height", "width"]
    session = _session(onnx_file)
    for x, expected in reference.values():
        y = session.run(None, {"mosaic": x})[0]
        assert y.shape == expected.shape and y.dtype == np.float32
        np.testing.assert_allclose(y, expected, atol=1e-4, rtol=0)


def test_onnx_float16_and_static_shape(model, reference, tmp_path):
    x, expected = reference[(2, 64, 96)]
    path = export(model, tmp_path / "half.onnx", dtype="float16", batch=2, height=64, width=96).path
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [2, 64, 96, 1]
    assert {i.data_type for i in proto.graph.initializer if len(i.dims) == 4} == {
        onnx.TensorProto.FLOAT16
    }
    session = _session(path)
    y = session.run(None, {"mosaic": x.astype(np.float16)})[0]
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), expected, atol=1e-2, rtol=0)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"mosaic": np.zeros((1, 64, 96, 1), np.float16)})


def test_onnx_metadata_and_official_weights(official_weights, tmp_path):
    result = export(official_weights, tmp_path / "official.onnx", height=64, width=128)
    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert META_KEYS <= set(props)
    assert props["source_sha256"] == sha256_of(official_weights) == result.metadata["source_sha256"]
    assert props["input_layout"] == props["output_layout"] == "NHWC"
    assert json.loads(props["input_shape"]) == ["batch", 64, 128, 1]
    assert "RGGB" in props["input"] and "amplif" in props["input"]
    assert props["jaxdark_version"] == result.metadata["jaxdark_version"]
    x = np.random.default_rng(1).uniform(0, 1, (1, 64, 128, 1)).astype(np.float32)
    expected = np.asarray(jaxdark.load_model(official_weights)(jnp.asarray(x)))
    y = _session(result.path).run(None, {"mosaic": x})[0]
    np.testing.assert_allclose(y, expected, atol=1e-4, rtol=0)


_RUN_WITHOUT_JAXDARK = """
import sys, numpy as np, jax
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
outs = {}
for name in sys.argv[3:]:
    outs[name] = np.asarray(exported.call(np.load(f"{sys.argv[2]}/{name}.npy")))
np.savez(f"{sys.argv[2]}/out.npz", **outs)
assert not [m for m in sys.modules if m.startswith(("jaxdark", "flax"))], "imported model code"
"""


def test_stablehlo_round_trip_without_jaxdark(model, reference, tmp_path):
    result = export(model, tmp_path / "net.stablehlo", format="stablehlo")
    meta = json.loads(result.sidecar.read_text())
    assert result.sidecar.name == "net.stablehlo.json" and META_KEYS <= set(meta)
    assert meta["input_shape_symbolic"] == "(b, 32*h, 32*w, 1)" and "cpu" in meta["platforms"]
    names = []
    for (b, h, w), (x, _) in reference.items():
        names.append(f"x{b}_{h}_{w}")
        np.save(tmp_path / f"{names[-1]}.npy", x)
    cmd = [sys.executable, "-c", _RUN_WITHOUT_JAXDARK, str(result.path), str(tmp_path), *names]
    subprocess.run(cmd, check=True, cwd=tmp_path, timeout=300)
    outs = np.load(tmp_path / "out.npz")
    for name, (_, expected) in zip(names, reference.values(), strict=True):
        np.testing.assert_allclose(outs[name], expected, atol=1e-6, rtol=0)
    exported = jax.export.deserialize(result.path.read_bytes())
    with pytest.raises(ValueError, match="remainder"):  # 48 is not a multiple of 32
        exported.call(jnp.zeros((1, 48, 32, 1)))


class _Tiny(nnx.Module):
    """Not a DarkRestorationNet, same contract: (B, H, W, 1) -> (B, H, W, 3)."""

    def __init__(self):
        self.conv = nnx.Conv(1, 3, (3, 3), rngs=nnx.Rngs(0))

    def __call__(self, x):
        return jax.nn.sigmoid(self.conv(x))


def test_stablehlo_takes_any_module_onnx_refuses(tmp_path):
    tiny = _Tiny()
    result = export(tiny, tmp_path / "tiny.shlo", format="stablehlo", dtype="float16", batch=1)
    assert result.metadata["model"] == "_Tiny" and result.metadata["source_sha256"] is None
    exported = jax.export.deserialize(result.path.read_bytes())
    x = np.random.default_rng(0).uniform(0, 1, (1, 64, 32, 1)).astype(np.float32)
    y = np.asarray(exported.call(jnp.asarray(x, jnp.float16)), np.float32)
    np.testing.assert_allclose(y, np.asarray(tiny(jnp.asarray(x))), atol=2e-3)
    with pytest.raises(ExportError, match="ONNX export supports DarkRestorationNet, not _Tiny"):
        export(tiny, tmp_path / "tiny.onnx")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "tflite"}, "format 'tflite' is not supported"),
        ({"dtype": "bfloat16"}, "dtype 'bfloat16' is not supported"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"height": 100}, "height 100 is not a positive multiple of 32"),
        ({"width": -32, "format": "stablehlo"}, "width -32 is not a positive multiple of 32"),
    ],
)
def test_unsupported_options_are_one_line_errors(model, tmp_path, options, message):
    with pytest.raises(ExportError, match=message) as info:
        export(model, tmp_path / "x.onnx", **options)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_and_its_errors(model, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    save_converted(model, ckpt)
    out = tmp_path / "sub" / "net.onnx"
    assert main(["export", str(ckpt), str(out), "--height", "32", "--width", "64"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"wrote {out} (onnx, float32, input (batch, 32, 64, 1) NHWC")
    assert _session(out).run(None, {"mosaic": np.zeros((3, 32, 64, 1), np.float32)})[0].shape == (
        3,
        32,
        64,
        3,
    )
    assert main(["export", str(ckpt), str(tmp_path / "x.onnx"), "--height", "33"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "height 33 is not a positive multiple of 32" in err
    assert main(["export", str(tmp_path / "missing.pth"), str(tmp_path / "x.onnx")]) == 2
    assert "weights not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- the example


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location(
        "onnx_restore", REPO_ROOT / "examples" / "onnx_restore.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_amplifier_matches_jaxdark(example):
    rng = np.random.default_rng(0)
    frames = [
        rng.gamma(0.5, 0.01, (64, 96)),
        rng.uniform(-0.1, 1.2, (50, 70)),
        np.tile(example.BIN_EDGES, 5),  # every bin edge
        np.zeros((32, 32)),  # all black: 300
        np.full((32, 32), 1.5),  # saturated: 1
    ]
    for x in frames:
        x = x.astype(np.float32)
        for m in (1.0, 5.0):
            ours = example.estimate_amplification(x, m)
            np.testing.assert_allclose(ours, float(jaxdark.estimate_amplification(x, m)), rtol=1e-5)


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG", "GBRG", "BGGR"])
def test_example_input_layout_matches_jaxdark(example, pattern):
    mosaic = np.random.default_rng(0).uniform(0, 1, (45, 70)).astype(np.float32)
    ours, offset = example.to_network_input(mosaic, pattern)
    rggb, expected_offset = to_rggb(mosaic, pattern)
    np.testing.assert_array_equal(ours, pad_to_multiple(rggb))
    assert offset == expected_offset


@pytest.mark.parametrize("bits", [8, 16])
def test_example_png_writer(example, tmp_path, bits):
    image = np.random.default_rng(0).uniform(-0.1, 1.1, (5, 7, 3)).astype(np.float32)
    example.write_png(tmp_path / "x.png", image, bits)
    decoded = cv2.imread(str(tmp_path / "x.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    top = (1 << bits) - 1
    np.testing.assert_array_equal(decoded, np.rint(np.clip(image, 0, 1) * top))


_RUN_EXAMPLE = """
import runpy, sys
sys.argv = sys.argv[1:]  # the script, then its arguments
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as e:
    assert not e.code, e.code
assert not [m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "jaxdark", "flax")]
"""


@pytest.mark.slow
def test_example_restores_demo_dng_like_jaxdark_restore(official_weights, tmp_path):
    from jaxdark.constants import SID_BLACK_LEVEL as BLACK_LEVEL
    from jaxdark.constants import SID_WHITE_LEVEL as WHITE_LEVEL
    from jaxdark.data.chart import NEUTRAL, XYZ_TO_CAMERA, simulate_raw, synthetic_scene
    from jaxdark.imaging.dng import write_dng

    # the demo's DNG, at the demo's default size
    dng = write_dng(
        tmp_path / "dark_scene.dng",
        simulate_raw(synthetic_scene(512, 768), seed=0),
        pattern="RGGB",
        black_levels=BLACK_LEVEL,
        white_level=WHITE_LEVEL,
        as_shot_neutral=NEUTRAL,
        color_matrix=XYZ_TO_CAMERA,
    )
    args = ["restore", str(dng), "--weights", str(official_weights), "--out-dir", str(tmp_path)]
    assert main(args) == 0
    model = export(official_weights, tmp_path / "net.onnx").path
    ours = tmp_path / "onnx.png"
    script = REPO_ROOT / "examples" / "onnx_restore.py"
    cmd = [sys.executable, "-c", _RUN_EXAMPLE, str(script), str(model), str(dng), str(ours)]
    subprocess.run(cmd, check=True, cwd=tmp_path, timeout=300)
    expected = cv2.imread(str(tmp_path / "dark_scene.png")).astype(int)
    got = cv2.imread(str(ours)).astype(int)
    assert got.shape == expected.shape == (512, 768, 3)
    assert np.abs(got - expected).max() <= 1  # within 1/255
    assert (got != expected).mean() < 1e-3
