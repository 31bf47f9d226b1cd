"""A scan's row took its gains from summary.json while Fig. 3 draws noise_scan.h5's table: a tampered table/gain (or a
summary.json gain edited) showed two different numbers for one level, the row still 'finished'. Now the row's gains
are the data file's, as the figure's, and a summary.json that disagrees with them marks the row incomplete, as a
flow's summary that disagrees with its checkpoint.h5 does; a local_limit run alike."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest

from analysis_runs import forced, md_rows, run_dirs

FIX = "(inconsistent: {name} holds the run); {fix}"


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _report(dirs, out):
    from hpcflow.report.build import build_report

    res = build_report([str(d) for d in dirs], out)
    with open(res["md"], encoding="utf-8") as fh:
        md = fh.read()
    return md_rows(md.split("## Runs")[1].split("\n## ")[0]), md


def _gain(history) -> str:
    """first / last of a sigma history, as the runs table writes a gain."""
    return f"{history[0] / history[-1]:.4g}"


def test_a_noise_scan_whose_summary_and_file_disagree_is_marked_and_shows_the_files_gains(tmp_path, runs):
    tampered, edited = tmp_path / "tampered", tmp_path / "edited"
    shutil.copytree(runs["noise"], tampered)
    with h5py.File(tampered / "noise_scan.h5", "a") as f:
        f["table/gain"][0] = 99.0
        scales = f["table/scale"][()]
        test = [f[f"scale_{i}/sigma_test"][()] for i in range(len(scales))]
        train = [f[f"scale_{i}/sigma_train"][()] for i in range(len(scales))]
    shutil.copytree(runs["noise"], edited)
    summary = json.loads((edited / "summary.json").read_text())
    summary["table"][-1]["gain"] = 7.0
    (edited / "summary.json").write_text(json.dumps(summary))
    rows, md = _report([runs["noise"], tampered, edited], tmp_path / "r")
    low, high = f"scale={scales[0]:.4g}", f"scale={scales[-1]:.4g}"
    trains = f"{low}: {_gain(train[0])}; {high}: {_gain(train[-1])}"
    assert rows["noise"][2] == "finished" and rows["noise"][8:10] == [
        trains, f"{low}: {_gain(test[0])}; {high}: {_gain(test[-1])}"], rows["noise"]
    assert rows["tampered"][2] == (f"incomplete: summary.json says gain = {test[0][0] / test[0][-1]:.6g} in row 0 "
                                   f"(scale {scales[0]:g}) but noise_scan.h5's table gives 99 "
                                   + FIX.format(name="noise_scan.h5", fix=forced(tampered))), rows["tampered"]
    assert rows["tampered"][8:10] == [trains, f"{low}: 99; {high}: {_gain(test[-1])}"], rows["tampered"]
    assert "tampered [delta] scale=0 d_nn=0 d_src=0 gain=99\n" in md  # Fig. 3's number, the row's
    assert rows["edited"][2].startswith(f"incomplete: summary.json says gain = 7 in row {len(scales) - 1} "), rows
    assert rows["edited"][9] == f"{low}: {_gain(test[0])}; {high}: {_gain(test[-1])}", rows["edited"]  # not 7


def test_a_local_limit_run_whose_file_was_altered_is_marked_and_shows_the_files_gains(tmp_path, runs):
    altered = tmp_path / "altered"
    shutil.copytree(runs["local_limit"], altered)
    with h5py.File(altered / "local_limit.h5", "a") as f:
        f["table/gain_test"][0] = 5.5
        widths, train, test = (f[f"table/{k}"][()] for k in ("width", "gain_train", "gain_test"))
    rows, _ = _report([runs["local_limit"], altered], tmp_path / "r")
    assert rows["local_limit"][2] == "finished", rows["local_limit"]
    status = rows["altered"][2]
    assert status.startswith("incomplete: summary.json says gain_test = ") and status.endswith(
        "local_limit.h5's table gives 5.5 " + FIX.format(name="local_limit.h5", fix=forced(altered))), status
    wide, narrow = (0, 1) if widths[0] > widths[1] else (1, 0)
    assert rows["altered"][9] == f"w={widths[wide]:.4g}: {test[wide]:.4g}; w={widths[narrow]:.4g}: {test[narrow]:.4g}"
    assert 5.5 in (test[wide], test[narrow]) and rows["altered"][8] == rows["local_limit"][8]
