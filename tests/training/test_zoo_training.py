"""A registered model other than the published one through the whole training stack:
`train.py` trains `sid_unet` (on synthetic pairs: no SID download), resumes, and
`eval.py`'s `evaluate` and `jaxdark restore` read its checkpoints with no model flags."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.sid_fixture import FixtureScene, make_sid_tree

SMALL_UNET = (8, 16, 32, 64, 128)  # sid_unet's structure at 1/4 of the published widths


def _config(tmp_path, steps):
    from configs.synthetic import get_config

    c = get_config("local")
    c.model.name = "sid_unet"
    c.model.widths = SMALL_UNET
    c.crop_size, c.batch_size, c.num_train_steps = 64, 2, steps
    c.checkpoint_every_steps, c.log_every_steps, c.image_every_steps = 2, 1, 0
    c.synthetic_variants = 2
    c.async_checkpointing = False
    return c


@pytest.mark.slow
def test_sid_unet_trains_resumes_evaluates_and_restores(tmp_path, capsys):
    from jaxdark.cli import main
    from jaxdark.evaluation import evaluate
    from jaxdark.models import name_of
    from jaxdark.training.loop import train_and_evaluate
    from jaxdark.weights.load import load_model, read_model_spec

    work = tmp_path / "run"
    first = train_and_evaluate(_config(tmp_path, 2), work)
    assert first["step"] == 2 and first["resumed_from"] is None
    second = train_and_evaluate(_config(tmp_path, 4), work)
    assert second["resumed_from"] == 2 and second["step"] == 4
    spec = read_model_spec(work / "checkpoints")
    assert spec == {"name": "sid_unet", "widths": list(SMALL_UNET)}
    assert np.isfinite(second["metrics"]["loss"])

    # a config that builds another network refuses to resume this run
    other = _config(tmp_path, 6)
    other.model.name = "lamba2021"
    other.model.widths = None
    from jaxdark.errors import CheckpointError

    with pytest.raises(CheckpointError, match="the checkpoint holds"):
        train_and_evaluate(other, work)

    model = load_model(work)
    assert name_of(model) == "sid_unet"

    # eval.py's evaluate on a small SID-layout tree, weights = the run (its record)
    root = make_sid_tree(
        tmp_path / "SID", height=64, width=96,
        scenes=(FixtureScene(10001, "test", 10.0, (0.1,)), FixtureScene(1, "train", 10.0, (0.1,)),
                FixtureScene(20001, "val", 10.0, (0.1,))),
    )  # fmt: skip
    ec = _config(tmp_path, 4)
    ec.data_dir = str(root)
    summary = evaluate(ec, work)
    assert summary["evaluated"] == 1 and not summary["failed"]
    assert np.isfinite(summary["overall"]["psnr"])

    # jaxdark restore --weights RUN --model sid_unet; the wrong --model is one line
    dng = root / "Sony" / "short" / "10001_00_0.1s.ARW"
    out = tmp_path / "restored"
    assert main(["restore", str(dng), "--weights", str(work), "--model", "sid_unet",
                 "--out-dir", str(out)]) == 0  # fmt: skip
    assert (out / "10001_00_0.1s.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["restore", str(dng), "--weights", str(work), "--model", "lamba2021",
                 "--out-dir", str(tmp_path / "o2")]) == 2  # fmt: skip
    assert "hold a sid_unet network, not lamba2021" in capsys.readouterr().err
    assert json.loads((work / "config.json").read_text())["model"]["name"] == "sid_unet"


# small versions of the Table 1 networks (llpacknet has no sizes)
TABLE1_SMALL = {
    "did": {"blocks": 2, "features": 16},
    "sgn": {"start_channels": 8, "main_blocks": 0},
    "llpacknet": {},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TABLE1_SMALL))
def test_table1_network_trains_restores_and_exports(tmp_path, capsys, name):
    """did, sgn, llpacknet: two training steps, `jaxdark restore --model NAME` on the run,
    StableHLO export equal to the model, and ONNX refused in one line naming StableHLO."""
    import jax
    import jax.numpy as jnp

    from jaxdark.cli import main
    from jaxdark.export import ExportError, export
    from jaxdark.training.loop import train_and_evaluate
    from jaxdark.weights.load import load_model, read_model_spec

    c = _config(tmp_path, 2)
    c.model.name, c.model.widths = name, None
    for key, value in TABLE1_SMALL[name].items():
        c.model[key] = value
    work = tmp_path / "run"
    result = train_and_evaluate(c, work)
    assert result["step"] == 2 and np.isfinite(result["metrics"]["loss"])
    assert read_model_spec(work / "checkpoints") == {"name": name, **TABLE1_SMALL[name]}

    root = make_sid_tree(
        tmp_path / "SID", height=64, width=96,
        scenes=(FixtureScene(10001, "test", 10.0, (0.1,)),),
    )  # fmt: skip
    dng = root / "Sony" / "short" / "10001_00_0.1s.ARW"
    out = tmp_path / "restored"
    assert main(["restore", str(dng), "--weights", str(work), "--model", name,
                 "--out-dir", str(out)]) == 0  # fmt: skip
    assert (out / "10001_00_0.1s.png").stat().st_size > 0

    model = load_model(work)
    hlo = export(work, tmp_path / "m.stablehlo", format="stablehlo", batch=1)  # the run
    assert hlo.metadata["source_sha256"] is None
    x = jnp.asarray(np.random.default_rng(0).random((1, 64, 96, 1), np.float32) * 2)
    exported = jax.export.deserialize(hlo.path.read_bytes())
    np.testing.assert_allclose(
        np.asarray(exported.call(x)), np.asarray(jax.jit(lambda v: model(v))(x)), atol=1e-5
    )
    with pytest.raises(ExportError, match="use format 'stablehlo'") as info:
        export(model, tmp_path / "m.onnx", format="onnx")
    assert "\n" not in str(info.value)
