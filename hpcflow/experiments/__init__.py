"""Job kinds of the paper's experiments (sec. 3.2): kernel flows, noise scan, distance scaling, local limit.

Each module defines `SCHEMA` (sections of its TOML job file) and `run(cfg, outdir) -> dict` (the summary);
`hpcflow.jobs.registry` maps `[job] kind` to the module. See jobs/*.toml.
"""
