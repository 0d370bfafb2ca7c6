"""The fast path's rewrites are selectable; every choice computes the model's function."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdark.models.lamba2021_folded import (
    REWRITES,
    apply_folded,
    default_rewrites,
    fold_params,
)
from tests.support.tiny_model import TINY, numpy_model


@pytest.mark.parametrize("rewrites", [REWRITES, ()], ids=["all", "none"])
def test_every_rewrite_choice_equals_the_model(rewrites):
    model = numpy_model(4, **TINY)
    x = jnp.asarray(np.random.default_rng(0).random((1, 64, 96, 1), np.float32) * 0.5)
    expected = np.asarray(model(x))
    folded = fold_params(model, rewrites=rewrites)
    assert ("conv2x_s2d" in folded) == ("space_to_depth" in rewrites)
    assert ("w_grouped" in folded["cat0"]) == ("dense_cat" not in rewrites)
    # (these random weights give larger activations than trained ones: 5e-5, not 1e-5)
    np.testing.assert_allclose(np.asarray(apply_folded(folded, x)), expected, atol=5e-5)


def test_defaults_per_backend_and_bad_names():
    assert default_rewrites("cpu") == REWRITES
    assert set(default_rewrites("gpu")) <= set(REWRITES)
    with pytest.raises(ValueError, match="unknown rewrites"):
        fold_params(numpy_model(0, **TINY), rewrites=("fft",))
