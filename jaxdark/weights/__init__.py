"""Network weights: where they come from and how they are stored.

* `jaxdark.weights.load`: `load_model` for every source (a PyTorch ``.pth``, a converted
  directory, a training run or one of its steps, ``official``);
* `jaxdark.weights.official`: the ``official`` checkpoint's download and cache;
* `jaxdark.weights.convert` and `jaxdark.weights.checkpoint_format`: PyTorch -> Flax
  conversion and our converted-checkpoint format;
* `jaxdark.weights.pytorch`: reading PyTorch files without executing them.
"""

from jaxdark.weights.load import describe_weights, load_model, load_run_model

__all__ = ["describe_weights", "load_model", "load_run_model"]
