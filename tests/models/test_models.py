"""The model zoo (jaxdark.models): the registry, and for every model its parameter count,
its input contract, a data-parallel step on 1 and 8 devices, a checkpoint round trip and
`Restorer` on an odd-sized frame. The example variant (examples/new_variant.py) is
tested like the built-in networks."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import examples.new_variant  # noqa: F401 - the user's own code registers tiny_resnet
from jaxdark import models
from jaxdark.errors import JaxdarkError, ModelError
from jaxdark.models.lamba2021 import DarkRestorationNet, count_params
from jaxdark.models.lamba2021_folded import apply_folded
from jaxdark.models.sid_unet import (
    SIDUNet,
    UpConv2x2,
    clip_straight_through,
    depth_to_space,
    pack_bayer,
)
from jaxdark.restorer import Restorer
from jaxdark.training.checkpointing import Checkpointer, read_model_spec
from jaxdark.training.step import init_train_state, make_data_mesh, replicate, split_model, to_host
from tests.support.workers import run_workers

EXAMPLE = "examples.new_variant:tiny_resnet"
# every model of the zoo and its published (or, for the example, computed) size
# did, sgn, llpacknet: the authors' PyTorch definitions counted with torch (notes/table1.md)
PARAMS = {
    "lamba2021": 784_768,
    "sid_unet": 7_760_748,
    "did": 2_570_691,
    "sgn": 3_604_963,
    "llpacknet": 1_170_640,
    EXAMPLE: 78_636,
}

apply_jit = nnx.jit(lambda model, x: model(x))


@pytest.fixture(scope="module")
def zoo() -> dict[str, nnx.Module]:
    return {name: models.create(name, seed=0) for name in PARAMS}


def _mosaic(shape, seed=0, scale=1.0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape, dtype=np.float32) * scale).astype(np.float32)


# --------------------------------------------------------------------------- registry


def test_builtin_models_are_registered_and_lamba2021_is_the_default():
    assert {"lamba2021", "sid_unet"} <= set(models.names())
    assert models.DEFAULT_MODEL == "lamba2021"
    assert type(models.build(None, abstract=True)) is DarkRestorationNet
    assert models.get("sid_unet") is SIDUNet
    # every registered built-in has its expected size in this file
    builtin = {n for n in models.names() if models.get(n).__module__.startswith("jaxdark")}
    assert builtin <= set(PARAMS)


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_count(zoo, name):
    assert count_params(zoo[name]) == PARAMS[name]


def test_registry_errors_are_one_line():
    cases = [
        (lambda: models.create("no_such_net"), "unknown model 'no_such_net'"),
        (lambda: models.create("sid_unet", features=3), "has no size 'features'"),
        (lambda: models.import_model("no.such.module:net"), "cannot import 'no.such.module'"),
        (lambda: models.get("no.such.module:net"), "must be registered by your own code"),
        (lambda: models.get("this:lamba2021"), "not by 'this'"),
        (lambda: models.create("sid_unet", widths=(32,)), "widths needs >= 2"),
    ]
    for make, text in cases:
        with pytest.raises(ModelError) as info:
            make()
        assert isinstance(info.value, JaxdarkError)
        assert text in str(info.value) and "\n" not in str(info.value)


def test_names_from_files_never_import(tmp_path, monkeypatch):
    """A record naming "module:name" is looked up in the registry only: the module is
    never imported, whether it exists on the path or not."""
    (tmp_path / "planted_model.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('x')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError, match="must be registered by your own code"):
        models.build({"name": "planted_model:lamba2021_x"}, abstract=True)
    with pytest.raises(ModelError, match="not by 'planted_model'"):
        models.build({"name": "planted_model:lamba2021"}, abstract=True)
    assert not (tmp_path / "RAN").exists()
    assert "planted_model" not in sys.modules


def test_register_checks_the_contract():
    with pytest.raises(ValueError, match="lower-case identifiers"):
        models.register("Bad Name")
    with pytest.raises(TypeError, match="input_multiple"):

        @models.register("no_multiple")
        class NoMultiple(nnx.Module):
            def config(self):
                return {}

    with pytest.raises(TypeError, match="config"):

        @models.register("no_config")
        class NoConfig(nnx.Module):
            input_multiple = 2

    with pytest.raises(ValueError, match="already taken"):

        @models.register("sid_unet")
        class Impostor(nnx.Module):
            input_multiple = 2

            def config(self):
                return {}

    assert models.get("sid_unet") is SIDUNet
    assert not {"no_multiple", "no_config"} & set(models.names())


def test_sizes_set_to_none_take_the_default_and_lists_become_tuples():
    name, sizes = models.split_spec({"name": "sid_unet", "widths": [8, 16], "extra": None})
    assert name == "sid_unet" and sizes == {"widths": (8, 16)}
    assert models.split_spec({"features": 32}) == ("lamba2021", {"features": 32})


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", list(PARAMS))
def test_output_is_rgb_in_unit_range(zoo, name):
    x = _mosaic((2, 64, 96, 1), scale=3.0)  # amplified: values above 1 occur
    y = np.asarray(apply_jit(zoo[name], jnp.asarray(x)))
    assert y.shape == (2, 64, 96, 3) and y.dtype == np.float32
    assert y.min() >= 0.0 and y.max() <= 1.0 and np.ptp(y) > 0


@pytest.mark.parametrize("name", list(PARAMS))
def test_input_multiple_is_checked_with_a_one_line_error(zoo, name):
    model = zoo[name]
    k = model.input_multiple
    assert isinstance(k, int) and k % 2 == 0 and type(model).input_multiple == k
    for shape in [(1, 2 * k, 3 * k + k // 2, 1), (1, k + k // 2, 2 * k, 1), (1, 2 * k, 2 * k, 3)]:
        with pytest.raises(ValueError) as info:
            model(jnp.zeros(shape))
        assert "\n" not in str(info.value)
        assert str(k) in str(info.value) or "(B, H, W, 1)" in str(info.value)


@pytest.mark.parametrize("name", list(PARAMS))
def test_architecture_record_rebuilds_the_model(zoo, name):
    spec = json.loads(json.dumps(models.spec_of(zoo[name])))  # JSON-safe
    assert spec["name"] == name
    rebuilt = models.build(spec, abstract=True)
    assert type(rebuilt) is type(zoo[name])
    shapes = jax.tree_util.tree_map(lambda v: v.shape, nnx.state(zoo[name], nnx.Param))
    assert jax.tree_util.tree_map(lambda v: v.shape, nnx.state(rebuilt, nnx.Param)) == shapes


def test_sizes_change_the_architecture_and_its_record():
    m = models.build({"name": "sid_unet", "widths": [8, 16, 16, 16, 16, 16]}, abstract=True)
    assert m.input_multiple == 64  # packing x pooling: 2 ** levels
    assert models.spec_of(m) == {"name": "sid_unet", "widths": [8, 16, 16, 16, 16, 16]}
    lamba = models.build({"features": 32, "growth": 16, "dense_layers": [3, 3]}, abstract=True)
    assert count_params(lamba) == 243_904  # the 'small' variant of jaxdark/models/lamba2021.py


# --------------------------------------------------------------------------- sid_unet parts


def test_sid_packing_and_depth_to_space_orders():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    packed = np.asarray(pack_bayer(x))[0]
    np.testing.assert_array_equal(packed[0, 0], [0, 1, 5, 4])  # R, G(0,1), B, G(1,0)
    y = np.arange(12.0).reshape(1, 1, 1, 12)  # TF order: channel (i * 2 + j) * 3 + c
    out = np.asarray(depth_to_space(jnp.asarray(y), 2))[0]
    np.testing.assert_array_equal(out[0, 1], [3, 4, 5])
    np.testing.assert_array_equal(out[1, 0], [6, 7, 8])


def test_up_convolution_is_a_2x2_stride_2_transposed_convolution():
    up = UpConv2x2(3, 2, dtype=None, rngs=nnx.Rngs(0))
    up.bias[...] = jnp.asarray([0.5, -1.0])
    x = _mosaic((1, 2, 3, 3), seed=4)
    k, b = np.asarray(up.kernel[...]), np.asarray(up.bias[...])
    expected = np.zeros((1, 4, 6, 2), np.float32)
    for h in range(2):
        for w in range(3):
            for i in range(2):
                for j in range(2):
                    expected[0, 2 * h + i, 2 * w + j] = x[0, h, w] @ k[i, j] + b
    np.testing.assert_allclose(np.asarray(up(jnp.asarray(x))), expected, rtol=1e-5, atol=1e-6)


def test_straight_through_clip_clips_forward_and_passes_gradients():
    x = jnp.asarray([-2.0, 0.25, 0.75, 3.0])
    np.testing.assert_array_equal(np.asarray(clip_straight_through(x)), [0.0, 0.25, 0.75, 1.0])
    grad = jax.grad(lambda v: jnp.sum(clip_straight_through(v) * jnp.arange(1.0, 5.0)))(x)
    np.testing.assert_array_equal(np.asarray(grad), [1.0, 2.0, 3.0, 4.0])


# --------------------------------------------------------------------------- training


@pytest.mark.slow
def test_one_step_on_8_devices_equals_1_device():
    """SGD(lr=1) moves the parameters by minus the gradient of the global mean loss; the
    shard_map step must give the same on 1 and 8 simulated devices. lamba2021 is covered
    by tests/training/test_train_step.py; here the other models of the zoo."""
    names = [n for n in PARAMS if n != "lamba2021"]
    with tempfile.TemporaryDirectory() as tmp:
        one, eight = run_workers("model_step_worker", (1, 8), Path(tmp), *names).values()
    for name in names:
        g1, g8 = one[f"{name}/grad"], eight[f"{name}/grad"]
        assert np.abs(g1).max() > 0, name
        # float32 sums in another order: llpacknet's 1.2M gradients differ by up to 6e-8
        np.testing.assert_allclose(g8, g1, rtol=1e-4, atol=1e-4 * np.abs(g1).max(), err_msg=name)
        np.testing.assert_allclose(eight[f"{name}/loss"], one[f"{name}/loss"], rtol=1e-6)


@pytest.mark.parametrize("name", list(PARAMS))
def test_checkpoint_records_the_model_and_round_trips(zoo, name, tmp_path):
    model = zoo[name]
    mesh = make_data_mesh(1)
    graphdef, params = split_model(model)
    tx = optax.adam(1e-3)
    ck = Checkpointer(
        tmp_path / "ck", every_steps=1, async_save=False, model_spec=models.spec_of(model)
    )
    ck.save(1, replicate(init_train_state(params, tx), mesh), None)
    ck.close()

    spec = read_model_spec(tmp_path / "ck")  # what eval.py needs to rebuild the network
    assert spec == models.spec_of(model)
    graphdef2, template = split_model(models.build(spec, seed=1))  # other values
    ck = Checkpointer(tmp_path / "ck", every_steps=1)
    restored = ck.restore(replicate(init_train_state(template, tx), mesh), None)
    ck.close()
    again = nnx.merge(graphdef2, to_host(restored.params))
    x = jnp.asarray(_mosaic((1, 64, 64, 1), seed=2, scale=2.0))
    np.testing.assert_array_equal(np.asarray(apply_jit(again, x)), np.asarray(apply_jit(model, x)))


def test_checkpoint_without_a_model_record_reads_as_none(tmp_path):
    mesh = make_data_mesh(1)
    params = {"w": np.ones((2, 2), np.float32)}
    ck = Checkpointer(tmp_path / "ck", every_steps=1, async_save=False)
    ck.save(1, replicate(init_train_state(params, optax.sgd(1.0)), mesh), None)
    ck.close()
    assert read_model_spec(tmp_path / "ck") is None


# --------------------------------------------------------------------------- Restorer


@pytest.mark.parametrize("name", list(PARAMS))
def test_restorer_on_an_odd_sized_frame(zoo, name):
    model = zoo[name]
    restorer = Restorer(model)
    assert (restorer.apply_fn is apply_folded) == (name == "lamba2021")  # fast path: lamba only
    x = _mosaic((75, 101), seed=3, scale=0.02)
    y = restorer.restore(x, amplification=40.0)
    assert y.shape == (75, 101, 3) and y.dtype == np.float32
    k = model.input_multiple
    padded_shape = (-(-75 // k) * k, -(-101 // k) * k)
    assert restorer.compiled_shapes == [(75, 101)]  # one function per frame shape
    padded = np.pad(x, ((0, padded_shape[0] - 75), (0, padded_shape[1] - 101)), mode="reflect")
    expected = np.asarray(apply_jit(model, jnp.asarray(40.0 * padded)[None, :, :, None]))[0]
    np.testing.assert_allclose(y, expected[:75, :101], atol=2e-5)


def test_restorer_pads_to_the_models_input_multiple():
    model = models.create("sid_unet", widths=(4, 4, 4, 4, 4, 4))  # input multiple 64
    restorer = Restorer(model)
    restorer.restore(_mosaic((70, 99), scale=0.02), amplification=10.0)
    assert restorer.compiled_shapes == [(70, 99)]  # padded to (128, 128) inside
    tiled = Restorer(model, tile_size=64, tile_overlap=0)
    tiled.restore(_mosaic((70, 99), scale=0.02), amplification=10.0)
    assert tiled.compiled_shapes == [(64, 64)]
    with pytest.raises(ValueError, match="multiple of 64"):
        Restorer(model, tile_size=96)


def test_converted_checkpoint_records_and_rebuilds_any_model(zoo, tmp_path):
    """`jaxdark convert`'s parameter directories hold the record too, so `load_model`
    (and with it `Restorer(path)` and `jaxdark restore --weights`) rebuilds sid_unet."""
    from jaxdark.weights.convert import save_converted
    from jaxdark.weights.load import load_model

    model = zoo["sid_unet"]
    meta = save_converted(model, tmp_path / "sid")
    assert meta["model_config"] == models.spec_of(model)
    assert meta["param_count"] == PARAMS["sid_unet"]
    loaded = load_model(tmp_path / "sid")
    assert type(loaded) is SIDUNet
    x = jnp.asarray(_mosaic((1, 64, 64, 1), seed=5, scale=2.0))
    np.testing.assert_array_equal(np.asarray(apply_jit(loaded, x)), np.asarray(apply_jit(model, x)))
