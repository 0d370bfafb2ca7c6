"""The model zoo: every restoration network jaxdark can train, evaluate, restore and time.

The contract a registered model honours (tests/models/test_models.py checks the built-in ones
and the example of examples/new_variant.py):

* it is an `nnx.Module` whose constructor takes keyword-only sizes and ``rngs``, and
  whose state is parameters only (what the data-parallel training step needs);
* ``model(x)``: ``x`` is (B, H, W, 1) float, the black-level-corrected, normalised and
  amplified RGGB mosaic, NHWC; the result is (B, H, W, 3) sRGB in [0, 1];
* ``model.input_multiple``: H and W must be multiples of it (an even int; a class
  attribute, which an instance may refine for its sizes); other shapes raise a one-line
  ``ValueError``. `jaxdark.Restorer` pads frames to it;
* ``model.config()``: its constructor sizes, JSON-safe, so that a checkpoint records
  the architecture as ``{"name": ..., **sizes}`` (`spec_of`) and `build` rebuilds it.

Registered here: ``lamba2021`` (the default; Lamba & Mitra, CVPR 2021,
`jaxdark.models.lamba2021.DarkRestorationNet`, restoring through its folded fast path
`jaxdark.models.lamba2021_folded`) and ``sid_unet`` (Chen et al., CVPR 2018,
`jaxdark.models.sid_unet.SIDUNet`), and the other networks of the paper's Table 1, each
written from the layer table of its PyTorch reference with that reference's exact
parameter count: ``did`` (Maharjan et al., ICME 2019, `jaxdark.models.did.DID`), ``sgn``
(Gu et al., ICCV 2019, `jaxdark.models.sgn.SGN`) and ``llpacknet`` (Lamba et al., BMVC
2020, `jaxdark.models.llpacknet.LLPackNet`). Add one with
``@jaxdark.models.register("name")``; see examples/new_variant.py.

Modules: `registry` (names, records), `contract` (input checks), `layers` and `ops`
(building blocks), `torch_init` (PyTorch's default initialisation), `precision` (compute
dtypes), `apply` (inference functions), and one module per network.
"""

from jaxdark.models.apply import inference_apply
from jaxdark.models.contract import check_input
from jaxdark.models.did import DID
from jaxdark.models.lamba2021 import DarkRestorationNet, count_params, create_model
from jaxdark.models.lamba2021_folded import apply_folded, fold_params
from jaxdark.models.llpacknet import LLPackNet
from jaxdark.models.registry import (
    DEFAULT_MODEL,
    build,
    create,
    get,
    import_model,
    name_of,
    names,
    register,
    register_inference,
    spec_of,
    split_spec,
)
from jaxdark.models.sgn import SGN
from jaxdark.models.sid_unet import SIDUNet

__all__ = [
    "DEFAULT_MODEL",
    "DID",
    "DarkRestorationNet",
    "LLPackNet",
    "SGN",
    "SIDUNet",
    "apply_folded",
    "build",
    "check_input",
    "count_params",
    "create",
    "create_model",
    "fold_params",
    "get",
    "import_model",
    "inference_apply",
    "name_of",
    "names",
    "register",
    "register_inference",
    "spec_of",
    "split_spec",
]
