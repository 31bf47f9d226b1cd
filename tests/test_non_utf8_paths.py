"""A job file or --out whose name is not UTF-8 (a Latin-1 name on a cluster: os.fsdecode gives one lone surrogate per
such byte): what a run writes of it is valid UTF-8. A --set value that is not UTF-8 is refused before any work, as a
job file that is not UTF-8 is."""

import os
import tomllib

import pytest

from hpcflow.cli import main
from jobtexts import DELTA_FLOW, flow_points

LATIN1 = os.fsdecode(b"caf\xe9")  # "cafe" with e-acute in Latin-1: not UTF-8


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")


def test_a_set_value_that_is_not_utf8_is_refused_before_any_work(tmp_path, capsys):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(flow_points(60, 20) + DELTA_FLOW)
    assert main(["run", str(job), "--out", str(out), "--set", f'job.description="{LATIN1}"']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--set" in err[0] and "not UTF-8" in err[0], err
    err[0].encode("utf-8")
    assert not out.exists()


def test_a_header_with_a_byte_that_is_not_utf8_is_written_as_valid_toml():
    from hpcflow.jobs.toml_out import dumps

    text = dumps({"job": {"kind": "flow"}}, header=f"made from /x/{LATIN1}.toml")
    assert text.splitlines()[0] == "# made from /x/caf\\xe9.toml"
    assert tomllib.loads(text.encode("utf-8").decode("utf-8")) == {"job": {"kind": "flow"}}
