"""How the report and the analysis scripts word what they show: a study's best parameters as 'name = value' (not a
Python dict), Fig. 4's formulas typeset as mathtext, each Wasserstein distance naming the spectrum it compares, the
round-off note alike in the runs table and Table 1, a '<' that opens no markup left as written in markdown, and an
empty run directory argument refused as such."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from test_tune_records import JOB, _job, _tune  # tests/ is on sys.path

pytest.importorskip("matplotlib")

TWO_PARAMS = JOB + '"kernel.width" = {low = 0.01, high = 0.9}\n'


def _params_shown(text: str, params: dict) -> None:
    """`text` shows every parameter as 'name = value', each value `params`' to 4 significant digits, and no dict."""
    assert "{'" not in text and "&#x27;" not in text and "{&#39;" not in text, text
    for name, value in params.items():
        m = re.search(rf"{re.escape(name)} = ([-0-9.e+]+)", text)
        assert m, (name, text)
        shown = m.group(1)
        assert float(shown) == pytest.approx(value, rel=5e-4), (name, shown, value)
        assert len(re.sub(r"[^0-9]", "", shown.split("e")[0]).lstrip("0")) <= 4, shown  # significant digits


def test_a_studys_best_parameters_are_shown_as_name_equals_value(tmp_path, capsys):
    """hpcflow tune's closing line, optuna_view's lines and the report's Optuna section (markdown and HTML) show the
    best trial's parameters as 'flow.dt = 0.1234, kernel.width = 0.5678', not as {'flow.dt': 0.123456789...}."""
    from hpcflow.analysis.study import load_study
    from hpcflow.report.build import build_report

    job, out = _job(tmp_path, TWO_PARAMS), tmp_path / "s"
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")
    assert rc == 0, io.err
    study = load_study(str(out))[0]
    best = study.best_trial
    assert set(best.params) == {"flow.dt", "kernel.width"}
    closing = next(line for line in io.out.splitlines() if line.startswith("hpcflow tune: best trial"))
    _params_shown(closing, best.params)
    from hpcflow.analysis import optuna_view

    _params_shown("\n".join(optuna_view.numbers(study)), best.params)
    res = build_report([str(out)], tmp_path / "rep")
    for path in (res["md"], res["html"]):
        text = open(path, encoding="utf-8").read()
        line = next(x for x in text.splitlines() if f"best trial {best.number}: value" in x)
        _params_shown(html.unescape(line), best.params)
        assert "{" not in line, line


def _ntk_data(epochs: int = 3) -> dict:
    """nn.h5's NTK datasets with both spectra (train x test: the default) and a width sweep."""
    rng = np.random.default_rng(1)
    return {"ntk/spectrum": rng.lognormal(size=(epochs + 1, 810)),
            "ntk/wasserstein": np.linspace(0, 0.3, epochs + 1),
            "ntk/spectrum_train_test": rng.normal(size=(epochs + 1, 810)) + 0j,
            "ntk/wasserstein_train_test": np.linspace(0, 0.15, epochs + 1),
            "ntk/rel_frobenius": np.linspace(0, 0.1, epochs + 1), "note": "",
            "width_sweep/width": np.array([16, 64]), "width_sweep/rel_frobenius_final": np.array([0.1, 0.01]),
            "width_sweep/wasserstein_final": np.array([0.02, 0.002]),
            "width_sweep/sigma_val_final": np.array([0.3, 0.35])}


def test_fig4_formula_labels_are_typeset_as_mathtext():
    """Fig. 4's labels ‖Θ_t − Θ_0‖_F / ‖Θ_0‖_F and B_IJ showed their underscores: drawn as the report draws them
    (`figure.titled`, whose run names stay literal), they are mathtext with subscripts, which matplotlib parses."""
    from matplotlib import pyplot as plt
    from matplotlib.mathtext import MathTextParser

    from hpcflow.analysis import fig4
    from hpcflow.analysis.figure import titled

    fig = titled(fig4.plot(_ntk_data()), "run $x_1$")
    try:
        parser = MathTextParser("agg")
        for label, subscripts in ((fig.axes[0].xaxis.label, ("_{IJ}",)), (fig.axes[2].yaxis.label, ("_F", "_0"))):
            text = label.get_text()
            assert label.get_parse_math(), text
            maths = re.findall(r"\$[^$]+\$", text)
            assert maths and all(any(s in m for m in maths) for s in subscripts), text
            assert "_" not in re.sub(r"\$[^$]+\$", "", text), text  # no underscore outside the formulas
            for m in maths:
                parser.parse(m, dpi=72)  # valid mathtext
        assert not fig._suptitle.get_parse_math()  # the run's name is drawn as written
        fig.canvas.draw()
    finally:
        plt.close(fig)


@pytest.mark.parametrize("spectrum, words, other", [
    ("train_test", "train x test blocks", "symmetrised"),
    ("train", "symmetrised train x train blocks", "train x test"),
])
def test_each_wasserstein_distance_names_its_spectrum(spectrum, words, other):
    """The printed line and the epoch panel's axis name the spectrum whose Wasserstein distance they give (the
    report printed 'Wasserstein distance (last epoch)' of the train x test spectrum beside summary.json's
    ntk_wasserstein of the train one); the width sweep's curve is of the symmetrised train x train spectrum."""
    from matplotlib import pyplot as plt

    from hpcflow.analysis import fig4

    data = {**_ntk_data(), "spectrum": spectrum}
    value = data["ntk/wasserstein_train_test" if spectrum == "train_test" else "ntk/wasserstein"][-1]
    line = next(x for x in fig4.numbers(data) if x.startswith("Wasserstein"))
    assert words in line and other not in line and float(line.rsplit(": ", 1)[1]) == pytest.approx(value, rel=1e-3)
    fig = fig4.plot(data)
    sweep = fig4.plot_sweep(data)
    try:
        assert words in fig.axes[1].get_ylabel().replace("\n", " ")
        legend = [t.get_text() for t in sweep.axes[0].get_legend().get_texts()]
        assert any("Wasserstein" in t and "symmetrised train x train blocks" in t.replace("\n", " ") for t in legend)
    finally:
        plt.close(fig)
        plt.close(sweep)


def test_the_round_off_note_reads_alike_in_the_runs_table_and_table1():
    """The runs table said '(σ at float64 round-off)' and Table 1 '(sigma_train 1.5e-16 at float64 round-off)' for
    one σ: both now say the same, in σ."""
    from hpcflow.analysis import table1
    from hpcflow.report.detect import RunInfo
    from hpcflow.report.runs_table import row

    s = {"status": "finished", "n_train": 1500, "n_test": 1500, "sigma_train_initial": 0.3667,
         "sigma_train_final": 1.5e-16, "sigma_test_initial": 0.36, "sigma_test_final": 0.12,
         "gain_train": 0.3667 / 1.5e-16, "gain_test": 3.0}
    runs_cell = row(RunInfo("/x/qs", "flow", True, "", s))[8]
    t1_cell = table1._gain(table1._gains("train", np.array([0.3667, 1e-3, 1.5e-16]), 1500), "train", ".4g")
    notes = [re.search(r"\((.*)\)$", c).group(1) for c in (runs_cell, t1_cell)]
    assert notes[0] == notes[1] and "σ" in notes[0] and "sigma" not in notes[0], notes
    assert "1.5e-16" in notes[0] and "round-off" in notes[0]


def _t1_row(name: str) -> dict:
    return {"run": name, "status": "finished", "kernel": "gaussian", "n_train": 100, "dt": 1.0, "loss": "sigma",
            "hyper": "width=0.5", "steps": 3, "gain_train": 2.0, "gain_test": 1.5, "gain_train_why": "",
            "gain_test_why": ""}


def test_table1_markdown_leaves_a_lone_less_than_sign_as_written():
    """table1.md (and report.md's Table 1) wrote the paper's gains '~1e6 / <=5' as '~1e6 / &lt;=5', the terminal
    '<=5': a '<' that opens no tag nor autolink reads the same as written; one that would ('<i>') stays escaped."""
    from hpcflow.analysis import table1

    md = table1.markdown([_t1_row("run <i>x</i>")])
    line = md.splitlines()[2]
    assert line.endswith("| ~1e6 / <=5 |"), line
    assert "&lt;=" not in md and "<i>" not in md and "&lt;i>x&lt;/i>" in line, line
    assert table1.markdown([_t1_row("a")], entities=False).splitlines()[2].endswith("| ~1e6 / <=5 |")
    for text in ("a <b", "x <= y -> z", "<=5@example.org>", "a </b", "<!-- c"):  # could open markup: escaped
        assert "<" not in table1.md_cell(text), text
        assert table1.md_uncell(table1.md_cell(text)) == text


@pytest.mark.parametrize("given, said", [([""], "is empty"), (["  "], "is blank"),
                                         (["", "/nonexistent-x"], "is empty")])
def test_an_empty_run_directory_argument_is_refused_as_such(tmp_path, capsys, given, said):
    """hpcflow report "" said 'error: : does not exist'; like --out "" ('--out is empty') it names the empty
    argument: one line, exit 2, nothing written."""
    from hpcflow.cli import main

    out = tmp_path / "rep"
    capsys.readouterr()
    assert main(["report", *given, "--out", str(out)]) == 2
    io = capsys.readouterr()
    assert io.err.count("\n") == 1 and f"run directory argument (DIR) {said}" in io.err, io.err
    assert "error: : " not in io.err and not out.exists()
    if len(given) > 1:
        assert "/nonexistent-x: does not exist" in io.err
