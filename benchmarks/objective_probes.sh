#!/usr/bin/env bash
# Short probes of the training options that are ours (--likelihood-scale, --style-adversary,
# --kl-warmup), each scored by `ccvae eval` on the default data's test split.
#   bash benchmarks/objective_probes.sh DATA OUT [EPOCHS] [MAX_IMAGES]
# DATA: the default model's data (`ccvae data avatars DATA --n 30000 --seed 0 --size 64`). The probes
# train on 8,000 other avatars (seed 1), EPOCHS epochs each (default 16), two at a time on one core
# each. Prints one JSON line per probe.
set -euo pipefail
DATA=${1:?data folder}; OUT=${2:?output folder}; EPOCHS=${3:-16}; MAX=${4:-1000}
mkdir -p "$OUT/judges"
[ -d "$OUT/train-data" ] || ccvae data avatars "$OUT/train-data" --n 8000 --seed 1 --size 64 >/dev/null
probe() {  # NAME OPTIONS...
  local name=$1; shift
  local run
  run=$(OMP_NUM_THREADS=1 ccvae train "$OUT/train-data" --preset avatars --epochs "$EPOCHS" --seed 0 \
        --out "$OUT/runs-$name" "$@" 2> "$OUT/train-$name.log" | tail -1)
  OMP_NUM_THREADS=1 ccvae eval "$DATA" -m "$run/model.safetensors" --judge "$OUT/judges" --max-images "$MAX" \
        --json 2> "$OUT/eval-$name.log" > "$OUT/eval-$name.json"
}
# the judge is trained once, before the probes share it
[ -n "$(ls "$OUT/judges" 2>/dev/null)" ] || probe b1 --likelihood-scale 1
probe b03 --likelihood-scale 0.3 --classifier-weight 300 & probe b03-adv100 --likelihood-scale 0.3 --classifier-weight 300 --style-adversary 100 & wait
probe b03-warm5 --likelihood-scale 0.3 --classifier-weight 300 --kl-warmup 5 & probe b03-warm5-adv100 --likelihood-scale 0.3 --classifier-weight 300 --kl-warmup 5 --style-adversary 100 & wait
for f in "$OUT"/eval-*.json; do
  python3 - "$f" <<'PY'
import json, os, sys
m = json.load(open(sys.argv[1]))["metrics"]
cap, cons = m.get("capture", {}), m["edit_consistent"]
print(json.dumps({"probe": os.path.basename(sys.argv[1])[5:-5], "mean_accuracy": round(m["mean_accuracy"], 3),
                  "recon_l1": round(m["recon_l1"], 4), "judge_recon": round(m["judge"]["mean_recon_accuracy"], 3),
                  "edit_success": round(m["edit"]["mean_success"], 3), "consistent_edit_success": round(cons["mean_success"], 3),
                  "consistent_leakage": round(cons["mean_leakage"], 3),
                  "labels_from_style": round(m["mean_labels_from_style"], 3),
                  "capture_zc_beats_zs": f"{sum(c['z_c'] > c['z_s'] for c in cap.values())}/{len(cap)}"}))
PY
done
