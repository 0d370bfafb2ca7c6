"""``lamba2021``, the default: the published network, `jaxdark.model.DarkRestorationNet`.

The class stays where it is (its submodule paths mirror the reference's parameter names,
which weight conversion relies on); this module only registers it.
"""

from __future__ import annotations

from jaxdark.model import DarkRestorationNet
from jaxdark.models.registry import register

register("lamba2021")(DarkRestorationNet)
