"""``tfpot train CONFIG [--resume]``: train a potential from a YAML config.

CONFIG is a YAML file or the name of a bundled recipe (``tfpot train --list-recipes``;
``tfpot train --show-recipe demo`` prints one, commented, to start a config from).
Several processes: ``torchrun --nproc_per_node N -m tfpot train CONFIG``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List

#: exit status after Ctrl-C / SIGTERM (the checkpoint is written first), as in tfpot.cli
EXIT_INTERRUPTED = 130

import yaml

from tfpot.builder import as_atomic_numbers
from tfpot.training.config import ConfigError, describe, list_recipes, load_config, recipes_dir
from tfpot.training.data import check_data, labels_needed
from tfpot.training.run import train_run


def _epilog() -> str:
    return (
        "config keys (defaults after the colon):\n\n"
        + describe()
        + "\n\nRelative data paths in a config file are relative to that file's folder (in a bundled"
        "\nrecipe: to the current directory); output_dir is relative to the current directory;"
        "\ndata.path 'tfpot:demo' is the bundled demo data set. Commented recipes: " + str(recipes_dir())
        + "\n  (" + ", ".join(list_recipes()) + "; print one with --show-recipe NAME)."
        "\n\nOutputs in output_dir: best_model.pt (lowest validation loss, EMA weights),"
        "\nfinal_model.pt, checkpoint.pt, metrics.csv (the same for the same config and seed),"
        "\ntiming.csv (wall clock), train.log, tensorboard/, config.yaml, splits.npz,"
        "\nstatistics.json, test_metrics.json, summary.json. `tfpot eval OUTPUT_DIR` reports the"
        "\nheld-out test set with plots. A max_time budget fixes the number of epochs once, from"
        "\nthe measured speed of the first steps (recorded in the checkpoint)."
        "\nCtrl-C (or SIGTERM) finishes the step, writes a checkpoint and exits with status 130;"
        "\n--resume continues exactly where it stopped. Several processes (one per GPU, or gloo on CPU):"
        "\n  torchrun --nproc_per_node N -m tfpot train CONFIG  (training.batch_size is the global batch)"
    )


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model from a YAML config",
        description="Train a potential from a YAML config or a bundled recipe.", epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="YAML config file, or the name of a bundled recipe")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in output_dir from checkpoint.pt (new run if none)")
    p.add_argument("-o", "--output-dir", default=None,
                   help="write to this directory instead of the config's output_dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="set a config key on top of the file, e.g. --set training.max_epochs=2 "
                        "(VALUE is read as YAML; repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    p.add_argument("--check-data", action="store_true",
                   help="only check the config's data (every frame of every file: finite, "
                        "non-empty, consistent shapes, no atoms closer than data.min_distance, "
                        "known elements, the labels the loss needs), print the report with the "
                        "data statistics, and exit (0: no problems, 1: problems)")
    p.add_argument("--list-recipes", action="store_true", help="list the bundled recipes and exit")
    p.add_argument("--show-recipe", metavar="NAME", help="print a bundled recipe and exit")
    p.set_defaults(func=main)


def resolve_config(name: str) -> Path:
    """A config path: an existing file, else a bundled recipe of that name."""
    path = Path(name)
    if path.is_file():
        return path
    recipe = recipes_dir() / f"{Path(name).stem}.yaml"
    if recipe.is_file() and path.suffix in ("", ".yaml") and path.parent == Path("."):
        return recipe
    raise ConfigError(f"{name}: no such config file, and not a bundled recipe "
                      f"({', '.join(list_recipes())}); give a YAML path or a recipe name")


def parse_overrides(items: List[str]) -> Dict[str, Any]:
    """``["training.max_epochs=2", ...]`` -> ``{"training.max_epochs": 2}`` (values as YAML)."""

    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. --set training.max_epochs=2")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({e})") from None
    return out


def check_only(path: Path, overrides: Dict[str, Any]) -> int:
    """``--check-data``: the data check of a config, its report, exit 0 (or raise)."""
    cfg = load_config(path, overrides)
    species = None if cfg.model.species is None else as_atomic_numbers(cfg.model.species)
    check = check_data(cfg.data, labels_needed(cfg.loss), species)
    print("\n".join(check.lines(f"data check of {path}")))
    check.raise_if_problems("all listed above")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.list_recipes:
        for name in list_recipes():
            print(f"{name:20s} {recipes_dir() / (name + '.yaml')}")
        return 0
    if args.show_recipe:
        print(resolve_config(args.show_recipe).read_text(), end="")
        return 0
    if not args.config:
        print("tfpot train: give a CONFIG (see tfpot train --help)", file=sys.stderr)
        return 2
    path = resolve_config(args.config)
    overrides = parse_overrides(args.overrides)
    if args.check_data:
        return check_only(path, overrides)
    cfg = load_config(path, overrides)
    out, summary = train_run(cfg, resume=args.resume, output_dir=args.output_dir,
                             verbose=not args.quiet)
    if summary["stop_reason"] == "interrupted":
        again = f" -o {args.output_dir}" if args.output_dir else ""
        print(f"tfpot train: interrupted; checkpoint written to {out}; continue with "
              f"`tfpot train {args.config}{again} --resume`", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"done: {out}")
    return 0
