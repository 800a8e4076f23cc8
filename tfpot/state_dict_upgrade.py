"""State dicts of earlier tfpot versions, renamed to this version's layout.

Model files and training checkpoints store ``model.state_dict()``. tfpot 0.3 wrote:

* SO(3)-only layers (``parity="none"``, and the pre-0.2 ``"average"`` models) as separate
  ``TensorFrameConv``/``MLPMessage``/``AttentionMessage`` modules with plain MLPs; since 0.4 every
  layer is the one :class:`~tfpot.nn.tensor_frame_conv.TensorFrameConv` whose networks have
  empty odd channels in that mode, so the same weights sit under other names;
* the readout network and its float64 buffers (E0, scale, shift) at the top level; since 0.4
  they belong to the readout module (:class:`~tfpot.nn.readout.EnergyReadout`);
* sign buffers ``mirror_vec``/``mirror_mat`` of the mirror pass (gone with the mode).

:func:`upgrade_state_dict` maps those names; the numbers are the same tensors.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Tuple

from torch import Tensor

# (pattern, replacement) applied in order to every key of a tfpot 0.3 state dict
RENAMES: List[Tuple[str, str]] = [
    # MLP message of an SO(3)-only layer: lin_edge + net (SiLU, Linear, SiLU, Linear)
    (r"^(layers\.\d+\.message\.)lin_edge\.", r"\1first.even."),
    (r"^(layers\.\d+\.message\.)net\.1\.", r"\1hidden.even."),
    (r"^(layers\.\d+\.message\.)net\.3\.", r"\1out.even."),
    # attention message of an SO(3)-only layer: key_edge, key_out (SiLU, Linear), out
    (r"^(layers\.\d+\.message\.)key_edge\.", r"\1first.even."),
    (r"^(layers\.\d+\.message\.)key_out\.1\.", r"\1key_value."),
    (r"^(layers\.\d+\.message\.)out\.(weight|bias)$", r"\1out_e.\2"),
    # node update of an SO(3)-only layer: MLP (Linear, SiLU, Linear)
    (r"^(layers\.\d+\.update\.)net\.0\.", r"\1layers.0.even."),
    (r"^(layers\.\d+\.update\.)net\.2\.", r"\1out.even."),
    # readout: MLP and buffers of the model -> EnergyReadout
    (r"^readout\.net\.", "readout.mlp.net."),
    (r"^(atomic_reference|energy_scale|energy_shift)$", r"readout.\1"),
]
DROPPED = ("mirror_vec", "mirror_mat")


def upgrade_state_dict(state: Mapping[str, Tensor],
                       current: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """``state`` with tfpot 0.3 names mapped to this version's (a current one passes unchanged).

    ``current`` is the state dict of the model that will load it: its empty tensors (odd channels
    of width 0) are added where the old file has nothing to give for them.
    """
    out: Dict[str, Tensor] = {}
    for key, value in state.items():
        if key in DROPPED:
            continue
        for pattern, replacement in RENAMES:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    for key, value in current.items():
        if key not in out and value.numel() == 0:
            out[key] = value
    return out
