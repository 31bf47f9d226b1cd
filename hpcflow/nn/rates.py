"""Learning-rate limits and schedule rules of a network's training, one copy for the job file's [training] section
(hpcflow.nn.job) and the Python API's TrainConfig (hpcflow.nn.train); torch-free, so validating a job file does not
import torch.

Every learning rate of a run (any epoch, any sweep width) lies in [LR_MIN, LR_MAX]: lr * lr_decay^epoch and
lr * (width_ref/width)^lr_exponent neither underflow to 0 nor overflow.
"""

from __future__ import annotations

import math

from hpcflow.jobs.schema import MAX_STEPS, Field

LR_MIN, LR_MAX = 1e-300, 1e6

#: the learning-rate keys of [training] and TrainConfig (the job file's defaults; TrainConfig has its own)
RATE_FIELDS = {
    "lr": Field(float, 1e-3, lo=LR_MIN, hi=LR_MAX, help="learning rate"),
    "lr_schedule": Field(str, "exponential", choices=("exponential", "cosine"),
                         help="exponential: lr * lr_decay^epoch; cosine: lr -> lr_min over all steps"),
    "lr_decay": Field(float, 1.0, lo=0, lo_open=True, hi=1e6, help="exponential schedule: lr multiplied by this "
                      "per epoch"),
    "lr_min": Field(float, 0.0, lo=0.0, hi=LR_MAX, help="cosine schedule: the final learning rate"),
    "lr_warmup": Field(float, 0.0, lo=0.0, hi=MAX_STEPS,
                       help="epochs of linear warmup: the schedule's rate times min(1, (s + 1)/S_w) at step s"),
}
SCHEDULES = RATE_FIELDS["lr_schedule"].choices
#: the rate key each schedule does not read, and what the schedule does: a value other than its default given for
#: that key would be ignored, so it is refused (its default, which changes nothing, is accepted)
UNUSED_BY = {"exponential": ("lr_min", "lr * lr_decay^epoch"), "cosine": ("lr_decay", "lr -> lr_min over all steps")}


def unused_rate(tr: dict) -> str | None:
    """The key of `tr` (lr_schedule, lr_decay, lr_min) that its schedule does not read (`UNUSED_BY`) where it holds
    another value than its default, else None."""
    key = UNUSED_BY[tr["lr_schedule"]][0]
    return key if tr[key] != RATE_FIELDS[key].default else None


def other_schedule(schedule: str) -> str:
    """The schedule that reads the key `schedule` does not (`UNUSED_BY`)."""
    return next(s for s in SCHEDULES if s != schedule)


def in_range(log_lr: float) -> bool:
    """Whether the learning rate exp(log_lr) lies in [LR_MIN, LR_MAX]."""
    return math.log(LR_MIN) <= log_lr <= math.log(LR_MAX)


def rate_text(log_lr: float) -> str:
    """The learning rate exp(log_lr) as a number in a message ("1.153e+18"), also where it is beyond a float's range
    ("2.5e+434": the rules judge rates in logs, so such a rate is said, not overflowed)."""
    if abs(log_lr) < 700:
        return f"{math.exp(log_lr):.4g}"
    exponent = math.floor(log_lr / math.log(10))
    mantissa = round(math.exp(log_lr - exponent * math.log(10)), 3)
    if mantissa >= 10:  # (rounded up to the next power of ten)
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.4g}e{exponent:+03d}"


def schedule_fault(tr: dict) -> tuple[str, str] | None:
    """(key, why and the fix) for the first schedule rule the checked values `tr` (epochs, lr, lr_schedule,
    lr_decay, lr_min, lr_warmup) break, or None: lr_min above lr, a warmup longer than the run, an exponential
    decay that leaves [LR_MIN, LR_MAX]. Each layer prefixes the key its own way."""
    if tr["lr_min"] > tr["lr"]:
        return "lr_min", f"= {tr['lr_min']!r} exceeds lr = {tr['lr']!r}; set lr_min <= lr"
    if tr["lr_warmup"] > max(tr["epochs"], 1):
        return "lr_warmup", (f"= {tr['lr_warmup']!r} epochs exceeds epochs = {tr['epochs']}; set lr_warmup <= "
                             "epochs")
    if tr["lr_schedule"] == "exponential":
        last = math.log(tr["lr"]) + max(tr["epochs"], 1) * math.log(tr["lr_decay"])
        if not in_range(last):
            return "lr_decay", (f"= {tr['lr_decay']!r} over {tr['epochs']} epochs takes the learning rate to "
                                f"{rate_text(last)}, outside [{LR_MIN:g}, {LR_MAX:g}]; set an lr_decay closer to 1 or "
                                "fewer epochs")
    return None


def sweep_fault(tr: dict, widths, width_ref: float, lr_exponent: float, *, exponent: str = "lr_exponent"
                ) -> str | None:
    """Why (and the fix) a width sweep's schedule, or its first width, cannot train, or None: its learning rate
    lr(width) = lr (width_ref/width)^lr_exponent outside [LR_MIN, LR_MAX] (judged in logs: no overflow), or its
    schedule (`schedule_fault` of `tr`, the sweep's checked values, with that lr) broken. Each layer prefixes its
    section; `exponent` is lr_exponent's name in its fix (a job file's "[width_sweep].lr_exponent", whose --set
    the refusal then cites)."""
    fault = schedule_fault(tr) if len(widths) else None  # no widths: nothing trains with it
    if fault is not None:
        return f"with lr = {tr['lr']!r} over {tr['epochs']} epochs: {' '.join(fault)}"
    for w in widths:
        log_lr = math.log(tr["lr"]) + lr_exponent * math.log(width_ref / w)
        if not in_range(log_lr):
            return (f"lr(width={w}) = lr * (width_ref/width)^lr_exponent = {tr['lr']!r} * ({width_ref:g}/{w})^"
                    f"{lr_exponent:g} = {rate_text(log_lr)} lies outside [{LR_MIN:g}, {LR_MAX:g}]; lower the "
                    f"magnitude of {exponent}")
        lr = tr["lr"] * (width_ref / w) ** lr_exponent  # as the sweep computes it: in range, so finite
        fault = schedule_fault({**tr, "lr": lr})
        if fault is not None:
            return f"at width {w}, lr(width) = {lr:.4g}: {' '.join(fault)}"
    return None
