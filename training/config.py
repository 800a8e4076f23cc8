"""The training configuration: typed sections, validated once, with errors that name the key.

A config is a YAML file (or a dict) with these sections; every key has a default except the
data source. ``describe()`` renders this table for ``tfpot train --help``; the recipes in
``training/configs/`` are commented examples of every key.

.. code-block:: yaml

    seed: 0                    # data order, splits and weight initialisation
    device: auto               # auto | cpu | cuda | cuda:1
    output_dir: runs/demo
    num_threads: null          # torch CPU threads per process
    data:     {path: ..., split: {train: 950, val: 50, test: null}, cutoff: 5.0, ...}
    model:    {preset: small, dtype: float64, e0: least_squares, ...}
    loss:     {energy_weight: 1.0, forces_weight: 10.0, stress_weight: 0.0, ...}
    optimizer: {lr: 0.005, weight_decay: 0.0}
    schedule: {type: plateau, factor: 0.5, patience: 10, ...}
    training: {max_epochs: 100, max_time: null, batch_size: 8, ema_decay: 0.99, ...}
    logging:  {csv: true, tensorboard: auto, progress_bar: true}

Validation rules (all raise :class:`ConfigError`, a ``ValueError``, with ``<file>: <key>: ...``):

* unknown or misspelt keys are rejected with the closest valid key (``difflib``), or the section
  where that key does belong;
* values are checked for type (YAML's ``1e-3`` - a string in YAML 1.1 - is accepted as a float),
  range and allowed choices;
* combinations are checked (one data source; rMD17 split files need ``data.path``; at least one
  positive loss weight; element symbols in ``model.e0``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import yaml
from ase.data import atomic_numbers

from tfpot.data.qm9 import QM9_ENERGY_TARGETS
from tfpot.errors import HyperparameterError, TfpotError
from tfpot.hyperparameters import PRESETS, ModelHyperparameters

Number = Union[int, float]


class ConfigError(TfpotError, ValueError):
    """A training configuration is invalid; the message names the file and the key."""


def _f(default: Any = None, help: str = "", choices: Optional[Tuple[Any, ...]] = None,
       min: Optional[float] = None, gt: Optional[float] = None, max: Optional[float] = None,
       factory: Any = None) -> Any:
    meta = dict(help=help, choices=choices, min=min, gt=gt, max=max)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------------------------
@dataclass
class SplitConfig:
    """How ``data.path`` (or ``data.train`` without ``data.val``) is divided."""

    train: Optional[Number] = _f(None, "training structures: a count, a fraction, or null for all "
                                       "that are not validation/test", min=0)
    val: Number = _f(0.05, "validation structures (count or fraction); 0 for none", min=0)
    test: Optional[Number] = _f(0.1, "test structures (count or fraction), split off first so that "
                                     "the test set does not change with the train size; null or 0 "
                                     "for none; only with data.path", min=0)


@dataclass
class DataConfig:
    """Where the structures come from (units: eV, Å; readers convert)."""

    path: Optional[str] = _f(None, "one data file split into train/val/test by data.split; "
                                   "'tfpot:demo' is the bundled demo set")
    train: Optional[str] = _f(None, "training file (instead of data.path)")
    val: Optional[str] = _f(None, "validation file; without it data.split.val is taken from data.train")
    test: Optional[str] = _f(None, "test file, read only after training")
    format: Optional[str] = _f(None, "reader format (md17, rmd17, qm9, extxyz, ase-db, "
                                     "pymatgen-json, lmdb or an ase.io name); null: detect")
    options: Dict[str, Any] = _f(help="extra reader options, e.g. {energy_key: REF_energy}",
                                 factory=dict)
    target: Optional[str] = _f(None, "QM9 property used as the energy (U0, U, H, G, ...); "
                                     "null: U0 for QM9 files")
    split: SplitConfig = _f(help="split sizes (see data.split.*)", factory=SplitConfig)
    split_seed: Optional[int] = _f(None, "seed of the split; null: the top-level seed")
    rmd17_splits: Optional[str] = _f(None, "directory with official rMD17 index_train_0X.csv / "
                                           "index_test_0X.csv; validation (data.split.val, a count) "
                                           "comes from the train indices")
    rmd17_fold: int = _f(1, "rMD17 split fold X (1..5)", min=1, max=5)
    cutoff: float = _f(5.0, "neighbour cutoff radius, Å", gt=0)
    min_distance: float = _f(0.1, "data check: atoms closer than this (Å) are refused "
                                  "(overlapping or duplicated atoms)", min=0)
    num_workers: int = _f(0, "DataLoader worker processes per rank", min=0)


@dataclass
class _ModelSettings:
    """The model (see tfpot.build_model); null hyperparameters take the preset's value.

    Besides the hyperparameters: preset, dtype, species, and the numbers fitted to the data
    (E0, scale, shift, neighbour count).
    """

    preset: str = _f("small", "hyperparameter defaults", choices=tuple(PRESETS))
    dtype: str = _f("float64", "parameter dtype (energies are summed in float64 either way)",
                    choices=("float32", "float64"))
    species: Optional[List[Union[str, int]]] = _f(None, "elements the model knows; null: those "
                                                        "of the training data")
    e0: Union[str, Dict[str, float]] = _f("least_squares", "per-element reference energies: "
                                          "least_squares (fit on the training set), zero, or a "
                                          "dict {symbol: eV}")
    energy_scale: Union[str, float] = _f("auto", "scale of the network output, eV: auto (force "
                                         "RMS, or per-atom energy std without forces) or a number")
    energy_shift: Union[str, float] = _f("auto", "per-atom energy shift, eV: auto (mean per-atom "
                                         "energy left after E0) or a number")
    avg_num_neighbors: Union[str, float] = _f("auto", "message normalisation: auto (from the "
                                              "training set) or a number")
    seed: Optional[int] = _f(None, "weight initialisation seed; null: the top-level seed")

    def resolve(self, avg_num_neighbors: Optional[float] = None) -> ModelHyperparameters:
        """The preset with the keys set here (validated; raises HyperparameterError).

        ``avg_num_neighbors`` (from the training set) replaces ``auto``; without it, ``auto``
        keeps the preset's value (enough to validate the rest before any data is read).
        """
        values = {k: getattr(self, k) for k in ModelHyperparameters.keys()
                  if k != "avg_num_neighbors" and getattr(self, k) is not None}
        if avg_num_neighbors is not None:
            values["avg_num_neighbors"] = avg_num_neighbors
        elif self.avg_num_neighbors != "auto":
            values["avg_num_neighbors"] = self.avg_num_neighbors
        return PRESETS[self.preset].replace(**values)

    @classmethod
    def of(cls, hyperparameters: ModelHyperparameters, **settings: Any) -> "_ModelSettings":
        """The ``model:`` section whose :meth:`resolve` is ``hyperparameters`` (every key set);
        ``settings``: the other keys (dtype, e0, ...). Not validated: see :func:`validated`."""
        return cls(**hyperparameters.to_dict(), **settings)


def _hyperparameter_fields() -> List[Tuple[str, Any, dataclasses.Field]]:
    """One null-default config key per ModelHyperparameters field, with its help and range
    (avg_num_neighbors, which may be ``auto``, is a key of _ModelSettings)."""
    out = []
    for f in dataclasses.fields(ModelHyperparameters):
        if f.name == "avg_num_neighbors":
            continue
        tp = {"int": int, "float": float, "str": str}.get(f.type, List[float])
        meta = dict(f.metadata, hyperparameter=True)
        out.append((f.name, Optional[tp], field(default=None, metadata=meta)))
    return out


#: ``model:`` section. Its hyperparameter keys are the fields of
#: :class:`~tfpot.hyperparameters.ModelHyperparameters` (declared there once, with help and range).
ModelConfig = dataclasses.make_dataclass(
    "ModelConfig", _hyperparameter_fields(), bases=(_ModelSettings,),
    namespace={"__doc__": _ModelSettings.__doc__, "__module__": __name__})


@dataclass
class LossConfig:
    """Weighted sum of energy, force and stress errors (each normalised by its count)."""

    energy_weight: float = _f(1.0, "weight of the energy term", min=0)
    forces_weight: float = _f(10.0, "weight of the force term (per component, eV/Å)", min=0)
    stress_weight: float = _f(0.0, "weight of the stress term (per component, eV/Å^3)", min=0)
    per_atom_energy: bool = _f(True, "energy error per atom (eV/atom) rather than total (eV)")
    type: str = _f("mse", "mse or huber", choices=("mse", "huber"))
    huber_delta: float = _f(0.01, "Huber transition point (in the units of each term)", gt=0)
    frame_gate_weight: float = _f(0.0, "weight of the open-frame term: the mean over the batch's "
                                        "atoms of 1 - gate, which keeps training from closing "
                                        "the frame gates (0: off)", min=0)
    frame_closed_weight: float = _f(0.0, "weight of the closed-frame term: the mean over the "
                                         "batch's atoms of 1 - min(1, |v1 x v2|^2 / a_lo^2), "
                                         "which reopens frames that training shut, where the "
                                         "open-frame term has no gradient (0: off)", min=0)


@dataclass
class OptimizerConfig:
    """AdamW."""

    lr: float = _f(5e-3, "learning rate", gt=0)
    weight_decay: float = _f(0.0, "decoupled weight decay", min=0)
    amsgrad: bool = _f(False, "AMSGrad variant")


@dataclass
class ScheduleConfig:
    """Learning-rate schedule."""

    type: str = _f("plateau", "plateau (reduce on validation plateau), cosine (with linear "
                              "warm-up, over the run length: max_epochs, or the epochs that "
                              "the max_time budget allows) or constant",
                   choices=("plateau", "cosine", "constant"))
    factor: float = _f(0.5, "plateau: multiply lr by this", gt=0, max=1)
    patience: int = _f(10, "plateau: epochs without improvement before reducing", min=0)
    warmup_epochs: float = _f(0.0, "cosine: linear warm-up length in epochs", min=0)
    min_lr: float = _f(1e-6, "lower bound of the learning rate", min=0)


@dataclass
class TrainingConfig:
    """The loop."""

    max_epochs: int = _f(100, "epochs", min=1)
    max_time: Optional[float] = _f(None, "wall-clock budget of the training loop in seconds: "
                                         "the speed of the first steps fixes the number of "
                                         "epochs once (at most max_epochs), recorded in the "
                                         "checkpoint; null: none", gt=0)
    batch_size: int = _f(8, "structures per optimiser step, over all ranks", min=1)
    val_batch_size: Optional[int] = _f(None, "validation batch size; null: 2 x batch_size", min=1)
    ema_decay: Optional[float] = _f(0.99, "exponential moving average of the weights (used for "
                                          "validation and the saved models); null: off",
                                    min=0, max=1)
    grad_clip: Optional[float] = _f(10.0, "clip the gradient norm to this; null: off", gt=0)
    frame_noise: float = _f(0.0, "std (rad) of a random rotation of every atom's local frame in "
                                 "each training step, a regulariser (validation, saved models "
                                 "and inference use the frames as they are); 0: off", min=0,
                            max=1)
    loss_spike_factor: Optional[float] = _f(100.0, "skip (do not apply) a step whose loss is "
                                                   "above this many times the running geometric "
                                                   "mean of the steps before; null: off", gt=1)
    loss_spike_patience: int = _f(50, "stop the run after this many skipped steps in a row "
                                      "(training diverged)", min=1)
    early_stopping_patience: Optional[int] = _f(None, "stop after this many epochs without a "
                                                      "better validation loss; null: never", min=1)
    checkpoint_every: int = _f(100, "write checkpoint.pt every N optimiser steps (and at each "
                                    "epoch end); 0: epoch ends only", min=0)


@dataclass
class LoggingConfig:
    """What is written and shown."""

    csv: bool = _f(True, "metrics.csv, one row per epoch")
    tensorboard: Union[bool, str] = _f("auto", "TensorBoard events in output_dir/tensorboard: "
                                       "true, false or auto (if tensorboard is installed)")
    progress_bar: bool = _f(True, "tqdm bar with ETA per epoch (on a terminal)")


@dataclass
class TrainConfig:
    """A whole training run."""

    seed: int = _f(0, "seed of data order, splits and weights")
    device: str = _f("auto", "auto, cpu, cuda or cuda:N (with torchrun: one GPU per rank)")
    output_dir: str = _f("runs/tfpot", "where checkpoints, models and logs go")
    num_threads: Optional[int] = _f(None, "CPU threads of torch per process; null: torch's default "
                                          "(torchrun sets 1 per process). 1 is fastest on a busy "
                                          "machine", min=1)
    data: DataConfig = _f(help="data", factory=DataConfig)
    model: ModelConfig = _f(help="model", factory=ModelConfig)
    loss: LossConfig = _f(help="loss", factory=LossConfig)
    optimizer: OptimizerConfig = _f(help="optimizer", factory=OptimizerConfig)
    schedule: ScheduleConfig = _f(help="schedule", factory=ScheduleConfig)
    training: TrainingConfig = _f(help="training", factory=TrainingConfig)
    logging: LoggingConfig = _f(help="logging", factory=LoggingConfig)

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Conversion and validation
def _fields(cls) -> Dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _all_keys(cls=TrainConfig, prefix: str = "") -> List[str]:
    """Dotted names of every key, e.g. 'training.batch_size'."""
    hints = typing.get_type_hints(cls)
    out = []
    for name in _fields(cls):
        full = prefix + name
        out.append(full)
        if dataclasses.is_dataclass(hints[name]):
            out.extend(_all_keys(hints[name], full + "."))
    return out


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        names = " or ".join(_type_name(a) for a in args)
        return names + (" or null" if type(None) in typing.get_args(tp) else "")
    if origin in (list, List):
        return "a list"
    if origin in (dict, Dict):
        return "a mapping"
    if tp is bool:
        return "true/false"
    return {int: "an integer", float: "a number", str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp, where: str) -> Any:
    """Convert ``value`` to annotation ``tp`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: expected {_type_name(tp)} (got null)")
        errors = []
        # try exact-type matches first so that 3 stays an int in Union[int, float]
        ordered = sorted((a for a in args if a is not type(None)),
                         key=lambda a: 0 if (isinstance(a, type) and type(value) is a) else 1)
        for a in ordered:
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{where}: expected {_type_name(tp)} (got {value!r})")
    if value is None:
        raise ConfigError(f"{where}: expected {_type_name(tp)} (got null)")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} keys (got {value!r})")
        return _build(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false (got {value!r})")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer (got {value!r})")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number (got {value!r})")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number (got {value!r})")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise ConfigError(f"{where}: expected a string (got {value!r})")
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list (got {value!r})")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping (got {value!r})")
        _, vt = typing.get_args(tp) or (Any, Any)
        return {str(k): (v if vt is Any else _coerce(v, vt, f"{where}.{k}")) for k, v in value.items()}
    if tp is Any:
        return value
    raise TypeError(f"unsupported config annotation {tp!r}")


def _unknown_key_error(cls, key: str, prefix: str, source: str) -> ConfigError:
    valid = list(_fields(cls))
    full = prefix + key
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if match:
        hint = f"did you mean '{prefix}{match[0]}'?"
    else:
        # the key may be valid in another section (e.g. batch_size at the top level)
        elsewhere = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == key]
        if not elsewhere:
            m = difflib.get_close_matches(key, [k.rsplit(".", 1)[-1] for k in _all_keys()], n=1)
            elsewhere = [k for k in _all_keys() if m and k.rsplit(".", 1)[-1] == m[0]]
        hint = f"did you mean '{elsewhere[0]}'?" if elsewhere else ""
    where = f"section '{prefix[:-1]}'" if prefix else "the top level"
    return ConfigError(f"{source}: unknown key '{full}'" + (f" ({hint})" if hint else "")
                       + f"; valid keys at {where}: {', '.join(valid)}")


def _build(cls, raw: Mapping[str, Any], where: str):
    source, _, prefix = where.partition(": ")
    prefix = prefix + "." if prefix else ""
    fields = _fields(cls)
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            raise _unknown_key_error(cls, str(key), prefix, source)
    kwargs = {}
    for name, value in raw.items():
        f = fields[name]
        loc = f"{source}: {prefix}{name}"
        v = _coerce(value, hints[name], loc)
        meta = f.metadata
        # hyperparameters are checked by ModelHyperparameters itself (in _check), not twice
        if v is not None and not dataclasses.is_dataclass(v) and not meta.get("hyperparameter"):
            if meta.get("choices") and isinstance(v, str) and v not in meta["choices"]:
                m = difflib.get_close_matches(v, meta["choices"], n=1)
                raise ConfigError(f"{loc}: must be one of {', '.join(map(str, meta['choices']))} "
                                  f"(got {v!r}" + (f"; did you mean {m[0]!r}?)" if m else ")"))
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if meta.get("min") is not None and v < meta["min"]:
                    raise ConfigError(f"{loc}: must be >= {meta['min']} (got {v})")
                if meta.get("gt") is not None and v <= meta["gt"]:
                    raise ConfigError(f"{loc}: must be > {meta['gt']} (got {v})")
                if meta.get("max") is not None and v > meta["max"]:
                    raise ConfigError(f"{loc}: must be <= {meta['max']} (got {v})")
        kwargs[name] = v
    return cls(**kwargs)


def _check(cfg: TrainConfig, source: str) -> None:
    """Checks that involve several keys."""
    d = cfg.data

    def err(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: {msg}")

    if d.path is None and d.train is None:
        raise err("data", "give data.path (one file, split by data.split) or data.train "
                          "(with optional data.val and data.test)")
    if d.path is not None and (d.train or d.val or d.test):
        raise err("data.path", "give either data.path or data.train/val/test, not both")
    if d.val is not None and d.train is None:
        raise err("data.val", "needs data.train")
    if d.rmd17_splits is not None and d.path is None:
        raise err("data.rmd17_splits", "needs data.path (the rMD17 .npz file)")
    for key in ("train", "val", "test"):
        v = getattr(d.split, key)
        if isinstance(v, float) and v > 1:
            raise err(f"data.split.{key}", f"a fraction must lie in [0, 1]; give a count as an "
                                           f"integer (got {v})")
    if d.rmd17_splits is not None and not isinstance(d.split.val, int):
        raise err("data.split.val", "with data.rmd17_splits the validation size must be a count "
                                    f"(got {d.split.val})")
    if d.target is not None:
        if d.target not in QM9_ENERGY_TARGETS:
            raise err("data.target", f"must be one of {', '.join(QM9_ENERGY_TARGETS)} "
                                     f"(got {d.target!r})")
    m = cfg.model
    if isinstance(m.e0, str) and m.e0 not in ("least_squares", "zero"):
        raise err("model.e0", f"must be least_squares, zero or a mapping {{symbol: eV}} (got {m.e0!r})")
    if isinstance(m.e0, dict):
        for k, v in m.e0.items():
            if k not in atomic_numbers and not str(k).isdigit():
                close = difflib.get_close_matches(k, list(atomic_numbers), n=1)
                raise err(f"model.e0.{k}", "not an element symbol"
                          + (f" (did you mean {close[0]!r}?)" if close else ""))
            try:
                float(v)
            except (TypeError, ValueError):
                raise err(f"model.e0.{k}", f"expected a number in eV (got {v!r})") from None
    for key in ("energy_scale", "energy_shift", "avg_num_neighbors"):
        v = getattr(m, key)
        if isinstance(v, str) and v != "auto":
            try:
                setattr(m, key, float(v))  # YAML 1.1 reads 1e-3 as a string
            except ValueError:
                raise err(f"model.{key}", f"must be auto or a number (got {v!r})") from None
    if isinstance(m.energy_scale, float) and m.energy_scale <= 0:
        raise err("model.energy_scale", f"must be > 0 (got {m.energy_scale})")
    try:
        m.resolve()
    except HyperparameterError as e:
        raise err(f"model.{e.key}", e.reason) from None
    lo = cfg.loss
    if lo.energy_weight == 0 and lo.forces_weight == 0 and lo.stress_weight == 0:
        raise err("loss", "all weights are zero: nothing to train")
    dev = cfg.device
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise err("device", f"must be auto, cpu, cuda or cuda:N (got {dev!r})")
    if isinstance(cfg.logging.tensorboard, str) and cfg.logging.tensorboard != "auto":
        raise err("logging.tensorboard", f"must be true, false or auto (got {cfg.logging.tensorboard!r})")


def config_from_dict(raw: Mapping[str, Any], source: str = "<config>") -> TrainConfig:
    """A validated :class:`TrainConfig` from a nested mapping; ``source`` names it in errors."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level (got "
                          f"{type(raw).__name__})")
    cfg = _build(TrainConfig, raw, f"{source}: ")
    _check(cfg, source)
    return cfg


def validated(cfg: TrainConfig, source: str) -> TrainConfig:
    """A :class:`TrainConfig` built in code (``fit()``), checked as a config file would be."""
    return config_from_dict(cfg.to_dict(), source)


def with_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of the nested mapping ``raw`` with dotted keys set (``{"training.max_epochs": 2}``);
    the result is validated like any config, so a misspelt key is refused with a suggestion."""
    out = copy.deepcopy(dict(raw))
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{'.'.join(parts[:i + 1])}' is not a section")
        node[parts[-1]] = value
    return out


def load_config(config: Union[str, os.PathLike, Mapping[str, Any], TrainConfig],
                overrides: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """A validated config from a YAML file, a dict, or a TrainConfig (returned as is).

    Relative data paths (``data.path``, ``train``, ``val``, ``test``, ``rmd17_splits``) in a YAML
    file are relative to that file's folder (they are made absolute here), except in the bundled
    recipes, which are templates for the current directory; in a dict they are relative to the
    current directory. ``overrides``: dotted keys set on top of the file or dict (``tfpot train
    --set KEY=VALUE``).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: invalid YAML or an invalid key/value; the message names the file and key.
    """
    if isinstance(config, TrainConfig):
        if overrides:
            raise TypeError("overrides apply to a YAML file or a dict, not to a TrainConfig")
        return config
    if isinstance(config, Mapping):
        return config_from_dict(with_overrides(config, overrides or {}), "<config dict>")
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from e
    if raw is None:
        raise ConfigError(f"{path}: empty config file")
    if overrides:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        raw = with_overrides(raw, overrides)
    cfg = config_from_dict(raw, str(path))
    if path.resolve().parent != recipes_dir():  # bundled recipes are templates: current directory
        resolve_data_paths(cfg, path.resolve().parent)
    return cfg


#: data keys that name files or folders
DATA_PATH_KEYS = ("path", "train", "val", "test", "rmd17_splits")


def resolve_data_paths(cfg: TrainConfig, base: Path) -> None:
    """Make the relative data paths of ``cfg`` absolute, relative to ``base`` (the folder of the
    config file), in place; ``tfpot:`` names and absolute or ``~`` paths stay as they are."""
    for key in DATA_PATH_KEYS:
        value = getattr(cfg.data, key)
        if value is None or value.startswith("tfpot:") or value.startswith("~") \
                or os.path.isabs(value):
            continue
        setattr(cfg.data, key, str(base / value))


def describe(cls=TrainConfig, prefix: str = "", indent: int = 0) -> str:
    """Every key with its default and meaning, as text (for ``tfpot train --help``)."""
    hints = typing.get_type_hints(cls)
    lines = []
    for name, f in _fields(cls).items():
        tp = hints[name]
        pad = "  " * indent
        if dataclasses.is_dataclass(tp):
            lines.append(f"{pad}{name}:  # {(tp.__doc__ or '').strip().splitlines()[0]}")
            lines.append(describe(tp, prefix + name + ".", indent + 1))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        default = "null" if default is None else repr(default).strip("'")
        choices = f.metadata.get("choices")
        hint = f" [{' | '.join(choices)}]" if choices else ""
        lines.append(f"{pad}{name}: {default}  # {f.metadata.get('help', '')}{hint}")
    return "\n".join(lines)


def recipes_dir() -> Path:
    """Directory of the bundled YAML recipes."""
    return Path(__file__).resolve().parent / "configs"


def list_recipes() -> List[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))
