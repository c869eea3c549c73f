#!/usr/bin/env bash
# The GPU paths in one short run (under 5 minutes on one GPU), printing the figures:
#   1. the default study (14 jobs) with trainer=gpu: wall time, and each job's peak memory
#   2. the same at trainer.precision=bf16-mixed and at bf16-true: val loss and time vs fp32
#   3. trainer=ddp trainer.devices=1 over NCCL (the DDP code path on one GPU), in a 2-job -m,
#      and trainer.devices=2 where the machine has 2 GPUs or more
#   4. scripts/bench_train.py on CUDA: steps/s against the raw PyTorch loop, device-resident
#      batches and a DataLoader datamodule (0 and 2 workers)
#   5. scripts/bench_pack.py on CUDA: K = 8, 32 and 128 seeds of the default study's smallest
#      MLP (5 epochs each) packed (pack=[seed]) against unpacked
# Run it from the repository root on a machine with a GPU; it installs the project into
# $VENV (default .venv-gpu) with the machine's own torch when one is importable, or uses the
# Python in $PY when scalinglab already imports there (e.g. offline, from carried wheels).
#   bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
OUT=${OUT:-multirun/gpu-check}
export WANDB_MODE=disabled

if [ -z "${PY:-}" ]; then
  if [ ! -x "$VENV/bin/scalinglab-train" ]; then
    python3 -m venv --system-site-packages "$VENV"   # reuse a preinstalled CUDA torch
    "$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/pip" install -q torch
    "$VENV/bin/pip" install -q -e .
  fi
  PY="$VENV/bin/python"
fi
TRAIN=("$PY" -m scalinglab.train)
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
rm -rf "$OUT"

timed() {  # timed NAME CMD...: run CMD, print its wall time
  local name=$1; shift
  local t0=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1 || { echo "$name FAILED (log: $OUT/$name.log)"; tail -20 "$OUT/$name.log"; exit 1; }
  echo "$name: $((SECONDS - t0)) s"
}
mkdir -p "$OUT"
timed study-fp32 "${TRAIN[@]}" -m experiment=study trainer=gpu hydra.sweep.dir="$OUT/fp32"
timed study-bf16-mixed "${TRAIN[@]}" -m experiment=study trainer=gpu \
  trainer.precision=bf16-mixed hydra.sweep.dir="$OUT/bf16-mixed"
timed study-bf16-true "${TRAIN[@]}" -m experiment=study trainer=gpu \
  trainer.precision=bf16-true hydra.sweep.dir="$OUT/bf16-true"
timed ddp-nccl "${TRAIN[@]}" -m trainer=ddp trainer.devices=1 model=cnn \
  model.width=16,64 trainer.max_epochs=5 hydra.sweep.dir="$OUT/ddp"
if [ "$("$PY" -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  timed ddp-nccl-2gpu "${TRAIN[@]}" -m trainer=ddp trainer.devices=2 model=cnn \
    model.width=16,64 trainer.max_epochs=5 hydra.sweep.dir="$OUT/ddp2"
fi

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def runs(name):
    return {r["job"].rsplit("-", 1)[0]: r for r in
            (json.loads(p.read_text()) for p in (out / name).glob("*/run.json"))}
fp32, mixed, true = runs("fp32"), runs("bf16-mixed"), runs("bf16-true")
print(f"{'job':28} {'params':>7} {'val fp32':>9} {'bf16-mix':>9} {'bf16-true':>9} "
      f"{'s fp32':>7} {'s mix':>6} {'peak MiB':>8}")
for job in sorted(fp32, key=lambda j: (fp32[j]["family"], fp32[j]["params"])):
    a, b, c = fp32[job], mixed.get(job, {}), true.get(job, {})
    print(f"{job:28} {a['params']:>7} {a['val_loss']:>9.4f} {b.get('val_loss', float('nan')):>9.4f}"
          f" {c.get('val_loss', float('nan')):>9.4f} {a['time_s']:>7.2f} "
          f"{b.get('time_s', float('nan')):>6.2f} {a['peak_mem_bytes'] / 2**20:>8.1f}")
ddp = {**runs("ddp"), **{f"{k} (2 GPUs)": v for k, v in
                         (runs("ddp2") if (out / "ddp2").exists() else {}).items()}}
for job, r in sorted(ddp.items()):
    print(f"ddp {job}: {r['status']}, world size {r['world_size']}, strategy {r['strategy']}, "
          f"val_loss {r['val_loss']:.4f}, {r['time_s']:.1f} s")
EOF
"$PY" scripts/bench_train.py --repeats 3 --epochs 20 --cases tiny,medium,cnn,loader0,loader2
for K in 8 32 128; do
  echo "pack K=$K:"
  "$PY" scripts/bench_pack.py --pack seed experiment=study model=mlp model.target_params=1000 \
    trainer=gpu trainer.max_epochs=5 "seed=$(seq -s, 0 $((K - 1)))"
done
