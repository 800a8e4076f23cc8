"""The model's hyperparameters: one frozen, validated object, declared once.

:class:`ModelHyperparameters` is what :class:`~tfpot.model.EnergyModel` takes, what a model file
records (with the species and the cutoff), what the presets are (:data:`PRESETS`) and what the
``model:`` section of a training config holds (:mod:`tfpot.training.config` derives its keys,
help texts and ranges from the fields below). Every value is checked when the object is built,
and a bad one raises :class:`~tfpot.errors.HyperparameterError` naming the key::

    hp = PRESETS["small"].replace(num_layers=3, message="attention")
    hp = ModelHyperparameters.from_dict({"reps": "32x0+8x1", "envelope_p": 1})  # raises: envelope_p

The species and the cutoff are not hyperparameters of this object: they come from the data (the
elements it has, and the cutoff of its neighbour lists).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from tfpot.errors import HyperparameterError
from tfpot.nn.messages import MESSAGES
from tfpot.nn.radial import RADIAL_FILTERS
from tfpot.reps import TensorReps

#: Reflection handling of new models. ``"equivariant"``: Z2-equivariant networks, exact O(3)
#: invariance in one pass; ``"none"``: SO(3) only.
PARITY_MODES = ("equivariant", "none")
#: Pair frames of the frame ensemble (:mod:`tfpot.nn.frame_ensemble`). ``"ordered"``: one frame
#: per ordered pair (tfpot 0.12); ``"unordered"``: one bisector frame per unordered pair, half
#: the frames.
ENSEMBLE_PAIRS = ("ordered", "unordered")
#: The mirror-averaged mode of tfpot < 0.2: loaded from old model files (:mod:`tfpot.legacy`),
#: never chosen for a new model.
LEGACY_PARITY = "average"


def _param(default: Any, help: str, *, choices: Optional[Tuple[str, ...]] = None,
           min: Optional[float] = None, gt: Optional[float] = None) -> Any:
    return field(default=default, metadata=dict(help=help, choices=choices, min=min, gt=gt))


@dataclass(frozen=True)
class ModelHyperparameters:
    """Everything but species and cutoff that fixes a model's architecture (defaults: medium).

    Build one with keywords, :meth:`from_dict` (a file's or a config's mapping) or
    :meth:`replace` (a preset with overrides); each validates every value.
    """

    reps: str = _param("64x0+16x1+4x2", "feature multiplicities: channels of rank 0, 1, 2 "
                                        "Cartesian tensors per atom, e.g. '32x0+8x1+2x2'")
    num_layers: int = _param(2, "message-passing layers; receptive field = num_layers * cutoff",
                             min=1)
    num_basis: int = _param(8, "Bessel radial basis size", min=1)
    hidden: int = _param(64, "MLP width", min=1)
    message: str = _param("mlp", "message function", choices=tuple(MESSAGES))
    radial_filter: str = _param("none", "tanh: message hidden layers times a learned function "
                                        "tanh(W b(r) + c) of the radial basis, per channel "
                                        "(better per epoch, 8-66 % slower); none: not",
                                choices=RADIAL_FILTERS)
    lmax: int = _param(4, "angular order of the frame-free power spectrum", min=0)
    ps_channels: int = _param(8, "radial channels of the power spectrum", min=1)
    gate_range: Tuple[float, float] = _param((0.05, 0.3), "frame gate ramp [low, high] on "
                                             "|v1 x v2| (scale-free frame vectors), 0 < low < high")
    parity: str = _param("equivariant", "equivariant: exact O(3) invariance in one pass "
                                        "(Z2-equivariant networks); none: SO(3) only",
                         choices=PARITY_MODES)
    avg_num_neighbors: float = _param(10.0, "fixed message normalisation (a typical neighbour "
                                            "count)", gt=0)
    ensemble_channels: int = _param(0, "width of the weighted frame ensemble, local coordinates "
                                       "in pair frames of the inner neighbours, which exist at "
                                       "symmetric sites too (tfpot.nn.frame_ensemble); 0: off",
                                    min=0)
    ensemble_cutoff: float = _param(3.4, "inner cutoff of the frame ensemble, Å (its switch "
                                         "starts 0.5 Å before)", gt=0.5)
    ensemble_pairs: str = _param("ordered", "frames of the ensemble: ordered (one per ordered "
                                            "pair of inner neighbours) or unordered (one bisector "
                                            "frame per unordered pair: half the frames)",
                                 choices=ENSEMBLE_PAIRS)
    ensemble_max_angle: float = _param(120.0, "angle between two inner neighbours, degrees, from "
                                              "which their pair carries no frame in the ensemble "
                                              "(full weight from 30 degrees below; 120 suits "
                                              "close-packed metals, 150 keeps the bond pairs of "
                                              "sp2 and sp3 atoms)", gt=60.0)
    envelope_p: int = _param(6, "exponent of the polynomial cutoff envelope (>= 2: the envelope "
                                "vanishes with two derivatives at the cutoff)", min=2)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _checked(f, getattr(self, f.name)))
        try:
            reps = TensorReps(self.reps)
        except (TypeError, ValueError) as e:
            raise HyperparameterError("reps", str(e)) from None
        object.__setattr__(self, "reps", str(reps))
        if self.ensemble_max_angle > 170.0:
            raise HyperparameterError("ensemble_max_angle", f"expected at most 170 degrees (got "
                                      f"{self.ensemble_max_angle}); collinear pairs carry no "
                                      f"frame in any case")
        lo, hi = self.gate_range
        if not 0.0 < lo < hi:
            raise HyperparameterError("gate_range", f"expected [low, high] with 0 < low < high "
                                                    f"(got {list(self.gate_range)})")
        problem = MESSAGES[self.message].width_error(self.hidden, self.hidden_odd)
        if problem is not None:
            raise HyperparameterError("hidden", f"{problem} (message={self.message!r})")

    # ------------------------------------------------------------------------------------------
    @property
    def hidden_odd(self) -> int:
        """Width of the odd (mirror-antisymmetric) channels; 0 without parity equivariance."""
        return max(self.hidden // 2, 4) if self.parity == "equivariant" else 0

    @property
    def tensor_reps(self) -> TensorReps:
        return TensorReps(self.reps)

    @classmethod
    def keys(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelHyperparameters":
        """From a mapping of (some) keys; the others take the defaults (medium)."""
        return cls().replace(**values)

    def replace(self, **overrides: Any) -> "ModelHyperparameters":
        """A copy with ``overrides`` (validated; an unknown key is named, with the closest one)."""
        valid = self.keys()
        for key in overrides:
            if key not in valid:
                match = difflib.get_close_matches(key, valid, n=1)
                hint = f"did you mean {match[0]!r}? " if match else ""
                raise HyperparameterError(key, f"unknown; {hint}valid keys: {', '.join(valid)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> Dict[str, Any]:
        """Plain values (``gate_range`` as a list), as model files and YAML store them."""
        out = dataclasses.asdict(self)
        out["gate_range"] = list(self.gate_range)
        return out


def _checked(f: dataclasses.Field, value: Any) -> Any:
    """``value`` converted to the field's type and checked against its metadata."""
    key, meta = f.name, f.metadata
    if f.type in ("int", int):
        if isinstance(value, bool) or not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer()):
                raise HyperparameterError(key, f"expected an integer (got {value!r})")
        value = int(value)
    elif f.type in ("float", float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HyperparameterError(key, f"expected a number (got {value!r})")
        value = float(value)
    elif f.type in ("str", str):
        if not isinstance(value, str):
            raise HyperparameterError(key, f"expected a string (got {value!r})")
    else:  # gate_range: two numbers
        if (isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise HyperparameterError(key, f"expected two numbers [low, high] (got {value!r})")
        value = (float(value[0]), float(value[1]))
    if meta.get("choices") and value not in meta["choices"]:
        match = difflib.get_close_matches(str(value), meta["choices"], n=1)
        hint = f"; did you mean {match[0]!r}?" if match else ""
        if key == "parity" and value == LEGACY_PARITY:
            hint = ("; 'average', the mirror averaging of tfpot < 0.2, is no longer available "
                    "for new models: model files written with it still load")
        raise HyperparameterError(key, f"must be one of {', '.join(meta['choices'])} "
                                       f"(got {value!r}{hint})")
    if meta.get("min") is not None and value < meta["min"]:
        raise HyperparameterError(key, f"must be >= {meta['min']} (got {value})")
    if meta.get("gt") is not None and value <= meta["gt"]:
        raise HyperparameterError(key, f"must be > {meta['gt']} (got {value})")
    return value


#: Defaults by model size; ``build_model(preset=...)`` and the config's ``model.preset``.
PRESETS: Dict[str, ModelHyperparameters] = {
    "small": ModelHyperparameters(reps="32x0+8x1+2x2", hidden=32, num_layers=2, ps_channels=6,
                                  lmax=4),
    "medium": ModelHyperparameters(),
    "large": ModelHyperparameters(reps="128x0+32x1+8x2", hidden=128, num_layers=3, ps_channels=8,
                                  lmax=6),
}
