"""One module per on-disk format. Each reads into :class:`oculi.types.SampleSet` (and writes from it)."""
