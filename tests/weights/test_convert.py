"""Converter: the name table, error paths, orbax round trip and the CLI."""

import os
import subprocess
import sys
from collections import OrderedDict

import jax.numpy as jnp
import numpy as np
import pytest

import jaxdark
from jaxdark.cli import main as cli_main
from jaxdark.errors import CheckpointError
from jaxdark.weights.convert import (
    conv_table,
    infer_config,
    model_params,
    params_to_state_dict,
    read_converted_metadata,
    save_converted,
    sha256_of,
    state_dict_to_params,
)
from jaxdark.weights.load import load_model
from tests.support.paths import REPO_ROOT

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def fresh():
    return jaxdark.create_model(seed=7)


@pytest.fixture(scope="module")
def fresh_state_dict(fresh):
    return params_to_state_dict(fresh)


@pytest.fixture()
def fresh_pth(tmp_path, fresh_state_dict):
    path = tmp_path / "fresh.pth"
    torch.save(
        {"model": {k: torch.from_numpy(v.copy()) for k, v in fresh_state_dict.items()}}, path
    )
    return path


def test_table_covers_every_parameter(fresh, fresh_state_dict):
    assert len(conv_table()) == 27
    assert len(fresh_state_dict) == 63
    assert sum(v.size for v in fresh_state_dict.values()) == 784_768
    # exactly the reference names (our torch rendering loads them strictly)
    from convert_weights.reference_torch import ReferenceNet

    assert set(ReferenceNet().state_dict()) == set(fresh_state_dict)


def test_state_dict_round_trip(fresh, fresh_state_dict):
    params = state_dict_to_params(fresh_state_dict, jaxdark.create_model(seed=1))
    ours = model_params(fresh)
    assert set(params) == set(ours)
    for k in ours:
        np.testing.assert_array_equal(params[k], ours[k])


def test_infer_config_of_variant():
    m = jaxdark.create_model(features=32, growth=16, dense_layers=(3, 4))
    sd = params_to_state_dict(m)
    assert infer_config(sd) == {"features": 32, "growth": 16, "dense_layers": [3, 4]}


def _error(sd, model=None):
    with pytest.raises(CheckpointError) as info:
        state_dict_to_params(sd, model or jaxdark.create_model())
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_missing_key(fresh_state_dict):
    sd = dict(fresh_state_dict)
    del sd["RDB2.dense_layers.3.conv.1.weight_v"]
    assert _error(sd) == (
        "missing key RDB2.dense_layers.3.conv.1.weight_v (expected shape (32, 160, 3, 3))"
    )


def test_unexpected_key(fresh_state_dict):
    sd = dict(fresh_state_dict)
    sd["extra.head.weight"] = np.zeros((3, 4), np.float32)
    assert _error(sd) == "unexpected key extra.head.weight (shape (3, 4))"


def test_unexpected_bias_on_biasless_conv(fresh_state_dict):
    sd = dict(fresh_state_dict)
    sd["rdball.0.bias"] = np.zeros(64, np.float32)
    assert "unexpected key rdball.0.bias" in _error(sd)


def test_shape_mismatch(fresh_state_dict):
    sd = dict(fresh_state_dict)
    sd["conv2x.0.weight_v"] = np.zeros((12, 4, 3, 3), np.float32)
    assert _error(sd) == (
        "shape mismatch for conv2x.0.weight_v: checkpoint (12, 4, 3, 3), model (12, 4, 5, 5)"
    )


def test_integer_tensor_rejected(fresh_state_dict):
    sd = dict(fresh_state_dict)
    sd["conv2x.0.bias"] = np.zeros(12, np.int64)
    assert "conv2x.0.bias has dtype int64" in _error(sd)


def test_load_model_names_file_and_key(tmp_path, fresh_state_dict):
    sd = {k: torch.from_numpy(v.copy()) for k, v in fresh_state_dict.items()}
    sd["conv32x.1.0.bias"] = torch.zeros(65)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=rf"{path}: shape mismatch for conv32x.1.0.bias"):
        load_model(path)


def test_converted_round_trip_is_bit_identical(tmp_path, fresh, fresh_pth):
    dst = tmp_path / "converted"
    meta = save_converted(load_model(fresh_pth), dst, source=fresh_pth)
    assert meta["param_count"] == 784_768
    assert meta["format_version"] == 1
    assert meta["source_sha256"] == sha256_of(fresh_pth)
    assert read_converted_metadata(dst) == meta
    direct, converted = load_model(fresh_pth), load_model(dst)
    x = jnp.asarray(np.random.default_rng(0).random((1, 64, 96, 1), dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(direct(x)), np.asarray(converted(x)))
    np.testing.assert_array_equal(np.asarray(fresh(x)), np.asarray(converted(x)))


def test_converted_variant_round_trip(tmp_path):
    m = jaxdark.create_model(seed=2, features=32, dense_layers=(2, 3))
    save_converted(m, tmp_path / "v")
    loaded = load_model(tmp_path / "v")
    assert loaded.dense_layer_counts == (2, 3) and loaded.features == 32


def test_save_refuses_existing_destination(tmp_path, fresh):
    (tmp_path / "exists").mkdir()
    with pytest.raises(CheckpointError, match="already exists"):
        save_converted(fresh, tmp_path / "exists")


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights not found"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(CheckpointError, match="not a jaxdark checkpoint"):
        load_model(tmp_path / "empty_dir")
    torch.save(OrderedDict(w=torch.ones(2)), tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="missing key conv32x.1.0.weight_v"):
        load_model(tmp_path / "other.pth")


def test_cli_convert(tmp_path, fresh_pth, capsys):
    dst = tmp_path / "out"
    assert cli_main(["convert", str(fresh_pth), str(dst)]) == 0
    assert "784,768 parameters" in capsys.readouterr().out
    assert cli_main(["convert", str(fresh_pth), str(dst)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxdark convert: error:") and "already exists" in err
    assert "\n" not in err


def test_cli_convert_bad_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert cli_main(["convert", str(bad), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither zip nor pickle" in err


def test_module_entry_point_without_torch(tmp_path, fresh_pth):
    """``python -m convert_weights`` works with torch made unimportable."""
    dst = tmp_path / "nt"
    code = (
        "import sys, runpy; sys.modules['torch'] = None; "
        f"sys.argv = ['convert_weights', {str(fresh_pth)!r}, {str(dst)!r}]; "
        "runpy.run_module('convert_weights', run_name='__main__')"
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    assert read_converted_metadata(dst)["param_count"] == 784_768
