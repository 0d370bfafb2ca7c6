"""jaxdark.training.checkpointing: orbax save/restore of train state + grain iterator, retention,
atomicity (leftover temporary directories), and the SIGTERM guard."""

from __future__ import annotations

import os
import signal

import grain
import jax
import numpy as np
import optax
import pytest

from jaxdark.errors import CheckpointError
from jaxdark.training.checkpointing import Checkpointer, PreemptionGuard
from jaxdark.training.step import init_train_state, make_data_mesh, replicate, to_host


def _state(seed, mesh, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    params = {"conv": {"w": rng.standard_normal(shape).astype(np.float32)}, "list": {0: {
        "b": rng.standard_normal(2).astype(np.float32)}}}  # fmt: skip
    return replicate(init_train_state(params, optax.adam(1e-3)), mesh)


def _iterator():
    return iter(grain.MapDataset.source(list(range(100))).shuffle(seed=1).to_iter_dataset())


def _flat(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(to_host(tree))]


def test_save_restore_state_and_iterator(tmp_path):
    mesh = make_data_mesh(1)
    ck = Checkpointer(tmp_path / "ck", every_steps=2, max_to_keep=2)
    state = _state(0, mesh)
    state = state.replace(step=replicate(np.int32(4), mesh))
    it = _iterator()
    consumed = [next(it) for _ in range(5)]
    assert not ck.save(3, state, it)  # not a checkpoint step
    assert ck.save(4, state, it)
    expected_next = [next(it) for _ in range(3)]
    ck.close()

    ck2 = Checkpointer(tmp_path / "ck", every_steps=2, max_to_keep=2)
    assert ck2.latest_step() == 4
    fresh = _iterator()
    restored = ck2.restore(_state(1, mesh), fresh)
    for a, b in zip(_flat(restored), _flat(state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(to_host(restored.step)) == 4
    assert [next(fresh) for _ in range(3)] == expected_next
    assert consumed != expected_next
    assert restored.params["conv"]["w"].sharding.is_fully_replicated
    ck2.close()


def test_keeps_last_k_and_forced_final_save(tmp_path):
    mesh = make_data_mesh(1)
    ck = Checkpointer(tmp_path / "ck", every_steps=2, max_to_keep=2)
    state = _state(0, mesh)
    for step in range(1, 8):
        ck.save(step, state, None)
    ck.save(7, state, None, force=True)
    assert not ck.save(7, state, None, force=True)  # already there
    ck.wait()
    assert ck.all_steps() == [6, 7]
    ck.close()


def test_incomplete_checkpoint_is_ignored_and_cleaned(tmp_path):
    mesh = make_data_mesh(1)
    ck = Checkpointer(tmp_path / "ck", every_steps=1, async_save=False)
    ck.save(1, _state(0, mesh), None)
    ck.close()
    # what a SIGKILL during the save of step 2 leaves behind
    partial = tmp_path / "ck" / "2.orbax-checkpoint-tmp"
    (partial / "state").mkdir(parents=True)
    (partial / "state" / "garbage").write_bytes(b"\0" * 10)
    ck = Checkpointer(tmp_path / "ck", every_steps=1)
    assert ck.latest_step() == 1
    assert not partial.exists()
    ck.close()


# orbax leaves the reads of the failed restore un-awaited; that is noise, not a failure
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_restore_errors(tmp_path):
    mesh = make_data_mesh(1)
    ck = Checkpointer(tmp_path / "ck", every_steps=1)
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        ck.restore(_state(0, mesh), None)
    ck.save(1, _state(0, mesh), None)
    ck.wait()
    with pytest.raises(CheckpointError, match="does not fit"):
        ck.restore(_state(0, mesh, shape=(5, 4)), None)
    ck.close()
    with pytest.raises(ValueError, match="checkpoint_every_steps"):
        Checkpointer(tmp_path / "x", every_steps=0)


def test_preemption_guard_turns_sigterm_into_a_flag():
    previous = signal.getsignal(signal.SIGTERM)
    with PreemptionGuard() as guard:
        assert not guard.should_stop(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.requested and guard.should_stop(2)
        assert guard.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is previous
