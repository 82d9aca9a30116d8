"""The training engine: one Lightning ``Trainer`` setup for every algorithm (the DataLoaders built from what each
algorithm declares, checkpoints, early stopping, progress and per-epoch metrics) and
:func:`oculi.engine.training.train` with its named steps. The precision policy it applies is
:mod:`oculi.precision`, which the algorithms and inference share."""
