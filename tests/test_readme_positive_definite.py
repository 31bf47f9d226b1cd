"""README's nn paragraph and tune paragraph on diverged trials state the rules for networks whose validation metric
is not positive definite, with the summary.json keys docs/outputs.md documents: sigma_val_best only from epochs
positive definite at every validation point (sigma_val_best_epoch, val_not_positive_definite_epochs), and an nn
trial whose last epoch has such points pruned as a diverged one."""

import os
import re

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)


def _paragraphs(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as fh:
        return re.split(r"\n\s*\n", fh.read())


def _summary_keys():
    """The keys of docs/outputs.md's tables (first column, in backquotes)."""
    return {m.group(1) for p in _paragraphs(os.path.join("docs", "outputs.md"))
            for m in re.finditer(r"^\| `([\w.\[\]]+)` \|", p, re.M)}


def test_the_nn_paragraph_says_where_sigma_val_best_comes_from():
    nn = next(p for p in _paragraphs("README.md") if "history/val_not_positive_definite" in p)
    keys = {"sigma_val_best", "sigma_val_best_epoch", "val_not_positive_definite_epochs"}
    assert keys <= set(re.findall(r"`(\w+)`", nn)) and keys <= _summary_keys(), nn
    assert "positive definite at every validation point" in nn and "null" in nn, nn


def test_the_tune_paragraph_prunes_an_nn_trial_with_non_positive_definite_points_like_a_diverged_one():
    tune = next(p for p in _paragraphs("README.md") if "A trial whose flow diverges" in p)
    assert "`val_not_positive_definite_final` > 0" in tune and "val_not_positive_definite_final" in _summary_keys()
    said = re.sub(r"\s+", " ", tune)
    assert "nn trial" in said and "is pruned as a diverged one is" in said, said
