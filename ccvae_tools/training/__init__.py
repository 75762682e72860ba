"""Training: options and presets, batches, run folders and checkpoints, distributed, progress, the
loop. May import every layer below it (util, data, objective, model, interventions, evaluation)."""
