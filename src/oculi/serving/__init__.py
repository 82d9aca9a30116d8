"""The oculi server: the control plane (training jobs, :mod:`oculi.serving.control`) and, later, the data plane."""
