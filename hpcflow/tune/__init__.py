"""Hyper-parameter studies of flow jobs with Optuna (paper sec. 3.2): `[tune]` table, trials on fresh points.

`space` (the [tune] schema), `trial` (one trial's run directory), `objective`, `storage` (journal / RDB,
stale trials), `budget` (trials a worker may still add), `study` (the worker loop, best.toml), `gp`
(--sampler gp), `grid` (stepped float values on their decimal grid).
"""
