#!/usr/bin/env bash
# The quick start, from nothing: set up (scripts/setup.sh), train a small model on the bundled
# GFN2-xTB ethanol data (training/configs/demo.yaml: 320 training, 40 validation frames; a few
# minutes on 2 CPU cores), evaluate it on the 40 held-out test frames that training never saw
# (metrics, parity and per-element plots, learning curve), and run 1 ps of NVE MD with it from
# the first test frame (energy drift, energy/temperature plot). Everything lands in runs/demo/.
#
#   bash scripts/demo.sh              # the demo
#   bash scripts/demo.sh --quick      # the same steps with 2 epochs and 200 MD steps (~1 min)
#   bash scripts/demo.sh --no-setup   # skip scripts/setup.sh; use the tfpot on PATH
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
SETUP=1
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --no-setup) SETUP=0 ;;
        *) echo "usage: bash scripts/demo.sh [--quick] [--no-setup]" >&2; exit 2 ;;
    esac
done
if [ "$SETUP" = 1 ]; then
    bash scripts/setup.sh
    . .venv/bin/activate
fi
command -v tfpot >/dev/null || { echo "[demo] no tfpot command: run bash scripts/setup.sh" >&2; exit 1; }
export LD_LIBRARY_PATH="$(python -c 'import sys; print(sys.prefix)')/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

OUT=runs/demo
TRAIN_ARGS=()
MD_STEPS=2000
if [ "$QUICK" = 1 ]; then
    TRAIN_ARGS=(--set training.max_epochs=2)
    MD_STEPS=200
fi
if [ -e "$OUT" ]; then  # re-running the quick start: keep the earlier run, never overwrite it
    KEPT="$OUT.$(date +%Y%m%d-%H%M%S)"
    mv "$OUT" "$KEPT"
    echo "[demo] moved the previous run to $KEPT"
fi
echo "[demo] training (training/configs/demo.yaml ${TRAIN_ARGS[*]:-}) -> $OUT"
tfpot train training/configs/demo.yaml "${TRAIN_ARGS[@]}"
echo "[demo] evaluating $OUT/best_model.pt on the run's held-out test frames"
tfpot eval "$OUT"
python - <<'PY'
# the held-out test frames (with their GFN2-xTB labels) as extxyz: the MD starts from one of them
import numpy as np
from ase.io import write
from tfpot.data import demo_dataset_path, read_structures

test = np.load("runs/demo/splits.npz")["test"]
write("runs/demo/test_frames.xyz", read_structures(demo_dataset_path(), indices=test),
      format="extxyz")
PY
echo "[demo] NVE MD, $MD_STEPS steps of 0.5 fs at 300 K from the first test frame"
tfpot md "$OUT/test_frames.xyz" "$OUT/best_model.pt" --frame 0 --ensemble nve --temperature 300 \
    --steps "$MD_STEPS" --timestep 0.5 --threads 1 --traj "$OUT/md/md.traj" \
    --thermo "$OUT/md/thermo.csv"
echo "[demo] done: model $OUT/best_model.pt; test-set metrics and plots $OUT/eval_test/;"
echo "[demo]       MD trajectory, energies and temperature $OUT/md/"
