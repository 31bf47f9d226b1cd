"""A finished network trial's nn.h5 written again from its checkpoint.pt by the study's next `hpcflow tune`.

A trial directory whose nn.h5 is missing or damaged (a partial copy back from a cluster, a disk error) while its
summary.json and checkpoint.pt describe a finished trial whose checkpoint holds the whole training is what `hpcflow
nn --resume` mends outside a study (`commands.nn.redoes_nn_h5`). Inside a study, where `hpcflow nn` does not write,
the study's worker mends it before it draws a trial: it resumes the trial in its own directory from its checkpoint,
with the trial's parameters and point seeds, which redoes what follows the training and writes nn.h5, model.pt and
summary.json again. The trial's state and value, taken from the training history the checkpoint holds, stay as the
study recorded them. A trial stopped after its training (its worker died, or the disk refused a write, while it wrote
nn.h5: its checkpoint.pt holds the whole training, `trained`) is continued from that checkpoint by the study's next
worker as a new trial, as a preempted one is (`storage.recover_stale`, `study.Worker._write_failed`), so that its
value is recorded as it would have been.
"""

from __future__ import annotations

import os


def candidates(study, out: str) -> list:
    """(trial, run directory) of the study's finished (complete or pruned) trials whose run directory in the study
    directory `out` holds a checkpoint.pt and a missing or damaged nn.h5 (`commands.nn.nn_h5_fault`)."""
    from optuna.trial import TrialState

    from hpcflow.nn.files import CHECKPOINT

    found = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        rd, seeds = t.user_attrs.get("run_dir"), t.user_attrs.get("seeds")
        if not isinstance(rd, str) or not isinstance(seeds, list) or os.path.isabs(rd):
            continue  # not a trial directory of this study directory (another's, or the older layout's)
        run_dir = os.path.join(out, rd)
        if os.path.isfile(os.path.join(run_dir, CHECKPOINT)) and faulty(run_dir):
            found.append((t, run_dir))
    return found


def faulty(run_dir: str) -> bool:
    """Whether a trial's nn.h5 is missing or damaged (`commands.nn.nn_h5_fault`); looked at when the trials are listed
    (`candidates`) and again under the trial's lock, so that a worker that listed a trial before another worker mended
    it leaves it as mended."""
    from hpcflow.commands.nn import nn_h5_fault

    return nn_h5_fault(run_dir) is not None


def rewritable(job, trial, run_dir: str) -> bool:
    """Whether `trial`'s nn.h5 in `run_dir` is written again from its checkpoint.pt, as `hpcflow nn --resume` writes a
    run's (`commands.nn.already_finished`, `redoes_nn_h5`): the checkpoint loads and holds the whole training of the
    trial's job (`job`: the study's TuneJob); UserError where it cannot be read (damaged: cut short, not a torch file,
    an entry failing its CRC) or the job refuses the trial's parameters. A checkpoint of status "trained" is that of
    an earlier mend stopped after the training (a signal: its summary.json says "preempted"; its worker killed), which
    the next one finishes."""
    from hpcflow.commands.nn import already_finished, redoes_nn_h5
    from hpcflow.nn.checkpoint import load_checkpoint
    from hpcflow.nn.files import CHECKPOINT

    state = load_checkpoint(os.path.join(run_dir, CHECKPOINT))  # a damaged one is refused (UserError), and said
    cfg = job.trial_cfg(trial.params)
    if state.get("status") == "trained":  # the trial's value is recorded: only what follows training is redone
        return trained(run_dir) and int(state["train"]["epoch"]) >= cfg["training"]["epochs"]
    done = already_finished(state, cfg, run_dir)
    return done is not None and redoes_nn_h5(done, state)


def spec(trial, run_dir: str) -> dict:
    """The broadcast spec (`study.execute`) that resumes finished trial `trial` in its own directory to write its nn.h5
    again: its parameters and point seeds, its checkpoint refused rather than replaced ("rewrite")."""
    seeds = trial.user_attrs["seeds"]
    return {"number": trial.number, "params": dict(trial.params), "seeds": (int(seeds[0]), int(seeds[1])),
            "run_dir": run_dir, "resume": True, "rewrite": True}


def trained(run_dir: str) -> bool:
    """Whether the checkpoint.pt in a trial's run directory (its plain entries, read without torch) holds the whole
    training of its job: written at the end of training (status "trained") or after it ("finished", "diverged";
    `analysis.rundir.whole_training`)."""
    from hpcflow.analysis.rundir import network_checkpoint, whole_training

    entries = network_checkpoint(run_dir)
    if entries.get(("status",)) == "trained":
        entries = {**entries, ("status",): "finished"}  # its training ended; what follows it was not written
    return whole_training(entries)
