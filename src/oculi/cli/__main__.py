"""``python -m oculi.cli …`` = ``oculi …``; what torchrun runs: ``torchrun --nproc-per-node 2 -m oculi.cli train …``."""

from oculi.cli import main

main()
