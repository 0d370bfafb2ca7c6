"""train.py end to end on a generated SID folder: logs, checkpoints, resume after SIGTERM
and after SIGKILL (even mid-save), and a two-process jax.distributed run (CPU, gloo)
that agrees with a single process.

Runs train.py in subprocesses (device counts are fixed at JAX start-up) sharing a
persistent compilation cache, with crop 32, batch 4 and 8 steps.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import REPO_ROOT
from tests.support.sid_fixture import prepare_fixture_dataset
from tests.support.tensorboard_events import read_events

STEPS = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    sid_root, tfds_dir = prepare_fixture_dataset(tmp)
    return {"tmp": tmp, "sid": sid_root, "tfds": tfds_dir, "cache": tmp / "jax_cache"}


def _env(setup, devices=1, **extra):
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_COMPILATION_CACHE_DIR=str(setup["cache"]),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )
    env.update(extra)
    return env


def _cmd(setup, workdir, *extra):
    return [
        sys.executable,
        str(REPO_ROOT / "train.py"),
        "--config=configs/sid_sony.py:local",
        f"--workdir={workdir}",
        f"--config.data_dir={setup['sid']}",
        f"--config.tfds_data_dir={setup['tfds']}",
        "--config.crop_size=32",
        "--config.batch_size=4",
        f"--config.num_train_steps={STEPS}",
        "--config.checkpoint_every_steps=2",
        "--config.log_every_steps=2",
        "--config.image_every_steps=4",
        *extra,
    ]


def _run(setup, workdir, *extra, devices=1, timeout=400):
    p = subprocess.run(
        _cmd(setup, workdir, *extra),
        env=_env(setup, devices),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, f"train.py failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def _params(workdir, step):
    """Flattened parameters of the checkpoint at ``step`` (restored in this process)."""
    from flax import nnx

    from jaxdark.models.lamba2021 import DarkRestorationNet
    from jaxdark.training.checkpointing import Checkpointer
    from jaxdark.training.optim import make_optimizer
    from jaxdark.training.step import (
        init_train_state,
        make_data_mesh,
        replicate,
        split_model,
        to_host,
    )

    _, params = split_model(DarkRestorationNet(rngs=nnx.Rngs(123)))
    template = replicate(init_train_state(params, make_optimizer()[0]), make_data_mesh(1))
    ck = Checkpointer(Path(workdir) / "checkpoints", every_steps=1)
    try:
        state = ck.restore(template, None, step)
    finally:
        ck.close()
    assert int(to_host(state.step)) == step
    leaves = __import__("jax").tree_util.tree_leaves(to_host(state.params))
    return np.concatenate([np.ravel(x) for x in leaves])


@pytest.fixture(scope="module")
def baseline(setup):
    workdir = setup["tmp"] / "baseline"
    out = _run(setup, workdir)
    return workdir, out


@pytest.mark.slow
def test_training_logs_and_checkpoints(baseline):
    workdir, out = baseline
    assert f"step {STEPS}/{STEPS} | loss" in out and "steps/s" in out and "ex/s" in out
    assert "waiting for data" in out
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [4, 6, 8]  # every 2 steps, last 3 kept
    assert (workdir / "checkpoints" / "8" / "data" / "process_0-of-1.json").is_file()
    tags = set(read_events(workdir / "tensorboard"))
    tags_expected = ("loss", "l1", "ms_ssim", "learning_rate", "steps_per_sec", "examples_per_sec")
    for t in (*tags_expected, "data_wait_share"):
        assert f"train/{t}" in tags
    assert {"train/crop_0", "train/crop_1", "train/crop_2"} <= tags
    summary = json.loads((workdir / "train_summary.json").read_text())
    assert summary["step"] == STEPS and not summary["preempted"]
    assert 0 < summary["metrics"]["ms_ssim"] < 1
    # training moved the parameters
    assert not np.allclose(_params(workdir, 4), _params(workdir, 8))


class _Proc:
    """train.py in a subprocess, its output going to files (a full pipe would block it)."""

    def __init__(self, cmd, env, logdir: Path, name: str):
        logdir.mkdir(parents=True, exist_ok=True)
        self._out = open(logdir / f"{name}.out", "w+")  # noqa: SIM115
        self._err = open(logdir / f"{name}.err", "w+")  # noqa: SIM115
        self.popen = subprocess.Popen(
            cmd, env=env, cwd=REPO_ROOT, stdout=self._out, stderr=self._err
        )

    def poll(self):
        return self.popen.poll()

    def wait(self, timeout: float) -> tuple[int, str, str]:
        """Exit status, stdout and stderr; the process is killed if it overruns."""
        try:
            rc = self.popen.wait(timeout=timeout)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait()
        out, err = (Path(f.name).read_text() for f in (self._out, self._err))
        self._out.close()
        self._err.close()
        return rc, out, err


def _wait_for(predicate, proc, timeout=300.0, poll=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    raise TimeoutError("condition not reached")


@pytest.mark.slow
def test_resume_after_sigterm_and_after_sigkill_mid_save(setup, baseline):
    workdir = setup["tmp"] / "interrupted"
    ckdir = workdir / "checkpoints"

    # 1. SIGTERM once the first checkpoint is complete: saves the current step, exits 0.
    proc = _Proc(_cmd(setup, workdir), _env(setup), setup["tmp"] / "logs", "sigterm")
    try:
        assert _wait_for(lambda: (ckdir / "2" / "commit_success.txt").exists(), proc)
        proc.popen.send_signal(signal.SIGTERM)
    finally:
        rc, out, err = proc.wait(timeout=120)
    assert rc == 0, err[-3000:]
    assert "SIGTERM received: saving step" in out
    stopped = int(out.split("saving step ")[1].split()[0])
    assert 2 <= stopped < STEPS
    assert (ckdir / str(stopped) / "commit_success.txt").exists()

    # 2. Resume, checkpointing every step, and SIGKILL while a save is being written.
    proc = _Proc(
        _cmd(setup, workdir, "--config.checkpoint_every_steps=1"), _env(setup),
        setup["tmp"] / "logs", "sigkill",
    )  # fmt: skip

    def saving():
        return any(".orbax-checkpoint-tmp" in p.name for p in ckdir.iterdir())

    try:
        caught = _wait_for(saving, proc)
        proc.popen.kill()
    finally:
        rc, out, _ = proc.wait(timeout=60)
    assert caught, "the run ended before a save could be interrupted"
    assert rc == -signal.SIGKILL
    assert f"resumed from checkpoint at step {stopped}" in out

    # 3. Resume to the end: identical to the uninterrupted run.
    out = _run(setup, workdir)
    assert "resumed from checkpoint at step" in out
    assert not any(".orbax-checkpoint-tmp" in p.name for p in ckdir.iterdir())
    np.testing.assert_allclose(
        _params(workdir, STEPS), _params(baseline[0], STEPS), rtol=1e-6, atol=1e-8
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_two_processes(setup, workdir, devices_per_process, timeout):
    port = _free_port()
    # train.py selects gloo collectives for CPU processes
    env = _env(setup, devices=devices_per_process)
    procs = [
        _Proc(
            _cmd(
                setup,
                workdir,
                f"--coordinator_address=localhost:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ),
            env,
            workdir.parent / "logs",
            f"{workdir.name}_{i}",
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + timeout
    results = []
    for p in procs:
        try:
            results.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:  # _Proc.wait killed it
            results.append((None, "", "timed out"))
    for p in procs:  # a peer of a stalled process may still be waiting for it
        if p.poll() is None:
            p.popen.kill()
    return results


@pytest.mark.slow
@pytest.mark.parametrize("devices_per_process", [2, 1])
def test_two_processes_agree_with_one(setup, baseline, devices_per_process):
    """jax.distributed on localhost: 2 processes x 1 or 2 CPU devices, gloo collectives.
    (One device per process is the case where a replicated array made by device_put of
    a jax array could not be saved by orbax; `replicate` builds it from NumPy.)"""
    # Seen once in ~10 runs on the 2-core CI machine: both processes stall inside a
    # checkpoint save (process 1 in the state copy, process 0 silent) until the timeout.
    # Not understood yet (gloo on oversubscribed CPUs is the suspect); one retry with a
    # fresh port and workdir keeps CI meaningful, and a second stall still fails.
    for attempt in range(2):
        workdir = setup["tmp"] / f"two_process_{devices_per_process}_try{attempt}"
        results = _run_two_processes(setup, workdir, devices_per_process, timeout=240)
        if all(rc is not None for rc, _, _ in results):  # None: stalled, killed
            break
    outs = [(out, err) for _, out, err in results]
    for rc, out, err in results:
        assert rc == 0, f"{out[-2000:]}\n{err[-3000:]}"
    assert f"step {STEPS}/{STEPS}" in outs[0][0]
    assert "step" not in outs[1][0]  # only process 0 logs
    data = workdir / "checkpoints" / str(STEPS) / "data"
    assert {p.name for p in data.glob("process_*.json")} == {
        "process_0-of-2.json",
        "process_1-of-2.json",
    }
    two, one = _params(workdir, STEPS), _params(baseline[0], STEPS)
    # 2 or 4 devices vs 1: the same global batches, gradients summed in another order
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-5)
    assert np.mean(np.abs(two - one) > 1e-5 * np.abs(one) + 1e-6) < 1e-3


def test_config_recipe_and_local_variant():
    from configs.sid_sony import get_config

    c = get_config()
    assert (c.batch_size, c.crop_size, c.num_train_steps) == (8, 512, 1_000_000)
    assert (c.learning_rate, c.lr_decay_steps, c.lr_decay_factor, c.min_learning_rate) == (
        1e-4, 500_000, 0.1, 1e-5,
    )  # fmt: skip
    assert c.amplification == "gt" and c.seed == 0
    for field in ("data_dir", "checkpoint_every_steps"):
        assert field in c
    local = get_config("local")
    assert local.crop_size == 128 and local.worker_count == 0 and local.num_train_steps == 200
    with pytest.raises(ValueError, match="unknown variant"):
        get_config("huge")


@pytest.mark.parametrize(
    "override, message",
    [
        ({"data_dir": "", "tfds_data_dir": ""}, "set --config.data_dir"),
        ({"crop_size": 48}, "multiple of 32"),
        ({"amplification": "auto"}, "amplification must be one of"),
        ({"batch_size": 0}, "batch_size must be > 0"),
        ({"compute_dtype": "float16"}, "compute dtype must be one of float32, bfloat16"),
    ],
)
def test_bad_config_is_a_one_line_error(tmp_path, override, message):
    from configs.sid_sony import get_config
    from jaxdark.errors import JaxdarkError
    from jaxdark.training.loop import train_and_evaluate

    config = get_config("local")
    config.data_dir = str(tmp_path)
    config.update(override)
    with pytest.raises(JaxdarkError, match=message):
        train_and_evaluate(config, tmp_path / "w")


def test_train_py_reports_a_missing_sid_folder_in_one_line(tmp_path):
    p = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), "--config=configs/sid_sony.py:local",
         f"--workdir={tmp_path / 'w'}", f"--config.data_dir={tmp_path / 'missing'}",
         f"--config.tfds_data_dir={tmp_path / 'tfds'}"],
        cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 2
    lines = [line for line in p.stderr.splitlines() if "error" in line]
    assert lines == [f"train.py: error: {tmp_path / 'missing'}: SID folder not found"]
