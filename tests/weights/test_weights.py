"""jaxdark.weights.load: one `load_model` for .pth files, converted directories and training
runs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import jaxdark
from jaxdark.cli import main
from jaxdark.errors import CheckpointError
from jaxdark.imaging.dng import write_dng
from jaxdark.weights.convert import model_params
from jaxdark.weights.load import describe_weights, load_model, load_run_model, run_directory

SIZES = dict(features=32, growth=16, dense_layers=[2, 3])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A training run's workdir with checkpoints at steps 3 and 5 of a small model."""
    from jaxdark.training.checkpointing import Checkpointer
    from jaxdark.training.optim import make_optimizer
    from jaxdark.training.step import init_train_state, split_model

    workdir = tmp_path_factory.mktemp("run")
    (workdir / "config.json").write_text(json.dumps({"model": SIZES, "seed": 0}))
    tx, _ = make_optimizer()
    ckpt = Checkpointer(workdir / "checkpoints", every_steps=1, async_save=False)
    models = {}
    for step, seed in ((3, 1), (5, 2)):
        model = jaxdark.create_model(seed=seed, **SIZES)
        models[step] = model_params(model)
        _, params = split_model(model)
        state = init_train_state(params, tx)
        ckpt.save(step, dataclasses.replace(state, step=np.int32(step)), None)
    ckpt.close()
    return workdir, models


def _same(model, expected):
    got = model_params(model)
    assert got.keys() == expected.keys()
    for k in got:
        np.testing.assert_array_equal(got[k], expected[k])


def test_run_workdir_loads_the_newest_step(run):
    workdir, models = run
    assert run_directory(workdir) == (workdir.absolute(), None)
    _same(load_model(workdir), models[5])
    assert "newest step" in describe_weights(workdir)


def test_step_directory_loads_that_step(run):
    workdir, models = run
    step_dir = workdir / "checkpoints" / "3"
    assert run_directory(step_dir) == (workdir.absolute(), 3)
    model, step = load_run_model(step_dir)
    assert step == 3
    _same(model, models[3])


def test_run_errors_are_one_line(run, tmp_path):
    workdir, _ = run
    with pytest.raises(CheckpointError, match="shape"):
        load_run_model(workdir, {"features": 64, "growth": 32, "dense_layers": [2, 3]})
    bare = tmp_path / "bare"
    (bare / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no complete"):
        load_model(bare)
    (bare / "config.json").write_text(json.dumps({"model": SIZES}))
    with pytest.raises(CheckpointError, match="no complete"):
        load_model(bare)


def test_restore_cli_accepts_a_run_workdir(run, tmp_path, capsys):
    """`jaxdark restore --weights RUN_WORKDIR` restores with the run's newest parameters."""
    workdir, models = run
    rng = np.random.default_rng(0)
    write_dng(tmp_path / "shot.dng", (rng.poisson(30, (64, 96)) + 512).astype(np.uint16))
    out = tmp_path / "out"
    args = ["restore", str(tmp_path / "shot.dng"), "--weights", str(workdir), "--out-dir", str(out)]
    assert main([*args, "--format", "tiff"]) == 0
    import tifffile

    got = tifffile.imread(out / "shot.tiff").astype(np.float32) / 65535
    expected = jaxdark.Restorer(load_model(workdir)).restore_file(tmp_path / "shot.dng")
    np.testing.assert_allclose(got, expected, atol=1 / 65535 + 1e-6)
    assert "restored 1 of 1" in capsys.readouterr().out


def test_load_model_official_from_a_file_url(official_weights, tmp_path, monkeypatch):
    """``load_model("official")`` fetches the checkpoint once into the cache (here from a
    file:// URL: no test needs the internet) and loads it like the .pth itself."""
    monkeypatch.setenv("JAXDARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JAXDARK_WEIGHTS_URL", official_weights.resolve().as_uri())
    model = load_model("official")
    assert jaxdark.count_params(model) == 784_768
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").iterdir())
    _same(model, model_params(load_model(official_weights)))
