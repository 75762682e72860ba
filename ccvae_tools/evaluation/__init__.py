"""Evaluation: metrics, the held-out pass (shared with training), the parts of `ccvae eval`, the
independent judge. May import util, data, objective, model, interventions and render."""
