#!/usr/bin/env bash
# Regenerate the README's pictures from the shipped models (CPU, under a minute).
#   bash weights/make_pictures.sh
set -euo pipefail
cd "$(dirname "$0")"
M=avatars64.safetensors
E=examples
P=pictures
# every label's traversal of one face, as one looping animation
ccvae gif $E/glasses.png -m $M --size 96 --probability -o $P/traversals.gif
# one label on several faces (input, reconstruction, the walk)
ccvae traverse $E/glasses.png $E/hat.png $E/smile.png $E/brown.png -m $M --label eyeglasses --size 96 -o $P/eyeglasses.png
ccvae traverse $E/glasses.png $E/hat.png $E/smile.png $E/brown.png -m $M --label no_beard --size 96 -o $P/no_beard.png
ccvae traverse $E/glasses.png $E/hat.png $E/smile.png $E/brown.png -m $M --label smiling --size 96 -o $P/smiling.png
# a 2-D grid: No_Beard down, Eyeglasses across
ccvae traverse $E/brown.png -m $M --label no_beard --label eyeglasses --steps 7 --size 96 -o $P/grid2d.png
# conditional generation: glasses on, then a beard with one face's style
ccvae sample -m $M --set eyeglasses=1 -n 16 --seed 0 --size 96 -o $P/samples_eyeglasses.png
ccvae sample -m $M --set no_beard=0 --style-from $E/hat.png -n 8 --seed 0 --size 96 -o $P/samples_beard_same_style.png
# characteristic transfer between every pair: row r gives its characteristics, column c keeps its style
ccvae swap $E/glasses.png $E/hat.png $E/smile.png $E/brown.png -m $M --grid --size 96 -o $P/swap_grid.png
# edits: set labels, keep the rest
ccvae edit $E/brown.png -m $M --set eyeglasses=1 --set pale_skin=0 --compare --size 96 -o $P/edit.png

# the typeface model (weights/README.fonts32.md): letters of families it never saw
F=fonts32.safetensors
G="$E/fonts/g-arimo.png $E/fonts/g-tinos.png $E/fonts/g-cousine.png $E/fonts/g-biolinum.png"
ccvae traverse $G -m $F --label bold --size 64 -o $P/fonts_bold.png
ccvae traverse $G -m $F --label italic --size 64 -o $P/fonts_italic.png
# typeface characteristics (not the letter) between letters: row r gives its Bold/Italic/..., column c keeps its letter
ccvae swap $E/fonts/a-tinos-bolditalic.png $E/fonts/k-arimo-bold.png $E/fonts/r-cousine-italic.png \
    $E/fonts/e-nimbusroman.png -m $F --grid --labels bold,italic,monospace,condensed,serif --size 64 -o $P/fonts_swap.png
ccvae sample -m $F --set bold=1 --set italic=1 --set serif=1 --set char=g -n 16 --seed 0 --size 64 \
    -o $P/fonts_bold_italic_serif_g.png

# the studio (README): the page in headless Chromium, as its browser test drives it (needs the test
# extras and a Chromium: apt-get install chromium)
python ../tests/helpers/studio.py --screenshot $P/studio.png
# the report page (README): `ccvae report avatars64` in headless Chromium, the top 1450 px of the page
python ../tests/helpers/report_browser.py --screenshot $P/report.png --height 1450
