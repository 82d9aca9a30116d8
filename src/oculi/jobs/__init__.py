"""Jobs: long pieces of work (training, script mode, …) with a status, logs, metrics and outputs."""
