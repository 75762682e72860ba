#!/usr/bin/env bash
# Supervision sweep (the paper's table, on generated avatars): the default model's two-stage training
# (weights/README.md) at labelled fractions 0.004, 0.06, 0.2 and 1.0, shortened to EPOCHS epochs of
# the first stage and CYCLE_EPOCHS of the fine-tuning with the swap cycle and the style decorrelation,
# each scored by `ccvae eval`.
#   bash benchmarks/supervision_sweep.sh DATA OUT [EPOCHS] [MAX_IMAGES] [CYCLE_EPOCHS]
# DATA: `ccvae data avatars DATA --n 30000 --seed 0 --size 64`. Prints one JSON line per fraction.
# CYCLE_EPOCHS 0 skips the second stage.
set -euo pipefail
DATA=${1:?data folder}; OUT=${2:?output folder}; EPOCHS=${3:-3}; MAX=${4:-1000}; CYCLE=${5:-1}
mkdir -p "$OUT/judges"
for f in 0.004 0.06 0.2 1.0; do
  run=$(ccvae train "$DATA" --preset avatars --widths 64,64,64,128 --epochs "$EPOCHS" --sup-frac "$f" \
        --preview-every 0 --out "$OUT/runs" --seed 0 2> "$OUT/train-$f.log" | tail -1)
  if [ "$CYCLE" -gt 0 ]; then
    run=$(ccvae train "$DATA" --preset avatars --init-from "$run/model.safetensors" --swap-cycle 50 \
          --style-adversary 0 --style-decorrelate 300 --lr 5e-4 --epochs "$CYCLE" --sup-frac "$f" --preview-every 0 --out "$OUT/runs" --seed 0 \
          2> "$OUT/cycle-$f.log" | tail -1)
  fi
  ccvae eval "$DATA" -m "$run/model.safetensors" --judge "$OUT/judges" --max-images "$MAX" --json \
        2> "$OUT/eval-$f.log" > "$OUT/eval-$f.json"
  python3 - "$f" "$OUT/eval-$f.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[2]))["metrics"]
cap = m.get("capture", {})
better = sum(1 for c in cap.values() if c.get("z_c", 0) > c.get("z_s", 0))
clearly = m.get("capture_summary", {}).get("z_c_clearly_above")
print(json.dumps({"sup_frac": float(sys.argv[1]), "mean_accuracy": round(m["mean_accuracy"], 4),
                  "mean_balanced_accuracy": round(m["mean_balanced_accuracy"], 4),
                  "mean_majority_baseline": round(m["mean_majority_baseline"], 4),
                  "capture_zc_beats_zs": f"{better}/{len(cap)}",
                  "capture_zc_clearly_beats_zs": f"{clearly}/{len(cap)}",
                  "capture_zc_mean": round(sum(c["z_c"] for c in cap.values()) / max(len(cap), 1), 3),
                  "capture_zs_mean": round(sum(c["z_s"] for c in cap.values()) / max(len(cap), 1), 3),
                  "edit_success": round(m["edit"]["mean_success"], 3),
                  "consistent_edit_success": round(m["edit_consistent"]["mean_success"], 3),
                  "recon_l1": round(m["recon_l1"], 4)}))
PY
done
