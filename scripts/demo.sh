#!/usr/bin/env bash
# The main job, from nothing: set up, train a small model on the bundled GFN2-xTB ethanol data
# (training/configs/demo.yaml, a few minutes on 2 CPU cores), evaluate it on its held-out test
# frames (metrics + parity plots), and run 1 ps of NVE MD with it (energy drift reported).
# Everything lands in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
OUT=runs/demo
if [ -e "$OUT" ]; then  # re-running the quick start: keep the earlier run, never overwrite it
    KEPT="$OUT.$(date +%Y%m%d-%H%M%S)"
    mv "$OUT" "$KEPT"
    echo "[demo] moved the previous run to $KEPT"
fi
mkdir -p "$OUT"
echo "[demo] training (training/configs/demo.yaml -> $OUT)"
tfpot train training/configs/demo.yaml
echo "[demo] evaluating $OUT/best_model.pt on the demo data"
tfpot eval "$OUT/best_model.pt" tfpot:demo -o "$OUT/eval"
python - <<'PY'
from ase.io import write
from tfpot.data import demo_dataset_path, read_structures
write("runs/demo/start.xyz", read_structures(demo_dataset_path())[0])
PY
echo "[demo] NVE MD, 2000 steps of 0.5 fs at 300 K"
tfpot md "$OUT/start.xyz" "$OUT/best_model.pt" --ensemble nve --temperature 300 --steps 2000 \
    --timestep 0.5 --threads 1 --traj "$OUT/md.traj"
echo "[demo] done: model $OUT/best_model.pt, metrics and plots $OUT/eval, trajectory $OUT/md.traj"
