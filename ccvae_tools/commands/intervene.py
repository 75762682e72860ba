"""traverse, sample, edit, swap, interpolate, gif."""
