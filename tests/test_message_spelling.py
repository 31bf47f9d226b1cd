"""Values and names in refusals as TOML writes them: a date as 2024-01-01 (not datetime.date(2024, 1, 1)), a key
that needs quotes quoted ([geometry]."n train"), and the int64-safe limit of the command-line counts as 2**62, as
the job files' ranges say it."""

import argparse

import pytest

from hpcflow.arguments import INT_LIMIT, whole_number
from hpcflow.errors import ConfigError
from hpcflow.jobs import registry
from hpcflow.jobs.schema import shown
from jobtexts import DELTA_FLOW, flow_points

FLOW = flow_points(60, 20) + DELTA_FLOW


def _refusal(tmp_path, text, sets=()) -> str:
    job = tmp_path / "job.toml"
    job.write_text(text)
    with pytest.raises(ConfigError) as exc:
        registry.load(job, list(sets), memory_check=False)
    return str(exc.value)


@pytest.mark.parametrize("written, said", [("2024-01-01", "2024-01-01"), ("1979-05-27T07:32:00", "1979-05-27T07:32:00"),
                                           ("1979-05-27T07:32:00Z", "1979-05-27T07:32:00+00:00"),
                                           ("07:32:00.5", "07:32:00.500000"), ("[2024-01-01]", "[2024-01-01]")])
def test_a_date_or_time_is_shown_as_toml_writes_it(tmp_path, written, said):
    msg = _refusal(tmp_path, FLOW.replace('kind = "flow"', f'kind = "flow"\ndescription = {written}'))
    assert f"[job].description = {said} must be a string" in msg, msg


def test_a_shown_date_reads_back_as_the_same_value():
    import datetime
    import tomllib

    for value in (datetime.date(2024, 1, 1), datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.timezone.utc),
                  datetime.time(7, 32, 0, 500000), datetime.datetime(2001, 2, 3, 4, 5, 6)):
        assert tomllib.loads(f"v = {shown(value)}")["v"] == value


def test_a_key_or_section_that_needs_quotes_is_quoted(tmp_path):
    msg = _refusal(tmp_path, FLOW.replace("n_train = 60", '"n train" = 60'))
    assert '[geometry]."n train" is an unknown key; did you mean n_train?' in msg, msg
    msg = _refusal(tmp_path, FLOW + '["my section"]\nx = 1\n')
    assert 'unknown section ["my section"];' in msg, msg
    msg = _refusal(tmp_path, FLOW, ["geometry.n+x=3"])  # (quoted, and still the --set named)
    assert '[geometry]."n+x" is an unknown key' in msg and msg.endswith("(from --set geometry.n+x=3)"), msg


def test_a_count_option_says_its_range_as_the_job_files_do():
    for text in ("0", "4611686018427387905", "99999999999999999999999"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"is not a whole number in \[1, 2\*\*62\]$"):
            whole_number(1, INT_LIMIT)(text)
    assert whole_number(1, INT_LIMIT)(str(INT_LIMIT)) == INT_LIMIT
    with pytest.raises(argparse.ArgumentTypeError, match=r"in \[0, 16\]$"):
        whole_number(0, 16)("17")
