"""The training engine: one Lightning ``Trainer`` setup for every algorithm (precision policy, checkpoints,
early stopping, progress and per-epoch metrics), and :func:`oculi.engine.training.train`."""
