#!/usr/bin/env bash
# The README's "Train your own", run end to end, and its picture (CPU; on a 2-core machine about five
# minutes of training, one of evaluation):
#   bash weights/make_train_your_own.sh [WORK_FOLDER]      (default: a new folder under /tmp)
# writes WORK/avatars (the data), WORK/runs/00000-avatars-sup1 (the run), WORK/eval.json (`ccvae eval
# --json`) and weights/pictures/train_your_own.png: four test faces, each as input, reconstruction,
# then one edit per column (Smiling, Eyeglasses, No_Beard, Blond_Hair and Wearing_Hat set to the
# other class).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${1:-$(mktemp -d /tmp/ccvae-train-your-own.XXXXXX)}"
mkdir -p "$WORK"
ccvae data avatars "$WORK/avatars" --n 3000 --size 32
run=$(ccvae train "$WORK/avatars" --image-size 32 --epochs 40 --swap-cycle 50 --out "$WORK/runs")
ccvae eval "$WORK/avatars" -m "$run" --json > "$WORK/eval.json"
python - "$WORK/avatars" "$run/model.safetensors" "$HERE/pictures/train_your_own.png" <<'PY'
import sys
from pathlib import Path

import numpy as np

from ccvae_tools import render
from ccvae_tools.api import load
from ccvae_tools.data.images import load_image
from ccvae_tools.interventions import edit

data, weights, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
test = [line.split()[0] for line in (data / "list_eval_partition.txt").read_text().splitlines()
        if line.split()[1:] == ["2"]][:4]                      # the first four test faces
m = load(weights)
faces = np.stack([load_image(data / "img_align_celeba" / name, m.preprocess) for name in test])
z = m.codes(faces)
rows = [[faces[b], *m.decode(z[b:b + 1])] for b in range(len(faces))]
for name in ("Smiling", "Eyeglasses", "No_Beard", "Blond_Hair", "Wearing_Hat"):
    i = m.label_names.index(name)
    now = m.model.log_q_y(m.model.split(z)[0]).argmax(-1)[:, i]
    for b in range(len(faces)):
        rows[b].append(m.decode(edit(m.model, z[b:b + 1], {i: 1 - int(now[b])}))[0])
render.grid(rows, scale=3, pad=2).save(out)
print(out)
PY
