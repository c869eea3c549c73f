#!/usr/bin/env bash
# The main job: set up on first use, then run the default study on MNIST-1D
# (MLP and CNN at 7 sizes each) -> run records -> fitted law -> plot -> HTML report.
#   bash scripts/study.sh [extra Hydra overrides]
# Environment: VENV (default .venv), SWEEP (default multirun/study),
#              TORCH_SPEC (default torch==2.13.0; install your CUDA build first for GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
SWEEP=${SWEEP:-multirun/study}

if [ ! -x "$VENV/bin/scalinglab-train" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first: the pin is then already satisfied and no second (CUDA) build is pulled in.
  "$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}"
  "$VENV/bin/pip" install -q -e .
fi

"$VENV/bin/scalinglab-train" -m experiment=study hydra.sweep.dir="$SWEEP" "$@"
"$VENV/bin/scalinglab-fit" "$SWEEP" --out "$SWEEP/fit"
"$VENV/bin/scalinglab-report" "$SWEEP" --out "$SWEEP/report"
echo
echo "records: $SWEEP/<job>/run.json   table: $SWEEP/runs.csv"
echo "fit:     $SWEEP/fit/fit.json"
echo "plot:    $SWEEP/fit/fit.png"
echo "report:  $SWEEP/report/report.html"
