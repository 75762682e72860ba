#!/usr/bin/env bash
# Regenerate the README's pictures from the shipped default model (CPU, under a minute).
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
