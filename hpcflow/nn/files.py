"""Names of a network run's files in its output directory, torch-free: `hpcflow nn` refuses a bad --out (or accepts
it, `--check`) without importing torch (~2 s)."""

#: the training checkpoint's name in a run directory (hpcflow.nn.checkpoint writes and reads it)
CHECKPOINT = "checkpoint.pt"
