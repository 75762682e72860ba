"""Evaluation: the metric functions (metrics), the held-out pass shared with training (heldout), the
ground truth of generated avatars (truth), the independent judge (judge), the five parts of
`ccvae eval` (parts) and their sequence (evaluate), and what the command runs around them (run).
May import util, data, objective, model, interventions and render."""
