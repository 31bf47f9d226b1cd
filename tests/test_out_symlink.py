"""An --out that is a symbolic link to a missing path (`ln -s nowhere dangling`), or a loop of links, is refused in one
line saying so and how to go on (exit 2, before any work, the link left as it was); it said "exists and is not a
directory", which a user looking at `ls dangling` (no such file) could not square. Once the directory it points to
exists, the run goes into it."""

import os

import pytest

from hpcflow.cli import main
from jobtexts import DELTA_FLOW, flow_points


@pytest.fixture
def job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    path = tmp_path / "job.toml"
    path.write_text(flow_points(40, 10) + DELTA_FLOW)
    return str(path)


@pytest.mark.parametrize("extra", [[], ["--check"], ["--force"]])
def test_a_dangling_link_as_out_is_named_with_its_target_and_the_fix(tmp_path, capsys, job, extra):
    os.symlink("nowhere", "dangling")
    assert main(["run", job, "--out", "dangling", "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err == ("hpcflow run: error: --out dangling is a symbolic link to a missing path (nowhere); create the "
                   "directory it points to, remove the link, or choose another --out\n"), err
    assert os.readlink("dangling") == "nowhere" and sorted(os.listdir(tmp_path)) == ["dangling", "job.toml"]
    os.mkdir("nowhere")  # the fix it names
    if not extra:
        assert main(["run", job, "--out", "dangling", "--quiet"]) == 0
        assert os.path.isfile(os.path.join("nowhere", "summary.json"))


def test_a_loop_of_links_as_out_is_named_as_one(tmp_path, capsys, job):
    os.symlink("loop", "loop")
    assert main(["run", job, "--out", "loop", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpcflow run: error: --out loop is a symbolic link that does not resolve (") and \
        err.endswith("); remove the link or choose another --out\n") and err.count("\n") == 1, err
