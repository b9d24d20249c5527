"""Training: the config, the state, the epoch loop, scoring, checkpoints, resuming and the run log."""
