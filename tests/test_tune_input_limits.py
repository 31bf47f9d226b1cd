"""`hpcflow tune` refusals of a [tune].seed outside a seed's range and of a new --storage path named as an SQLite
database: one line naming the key or option and the fix, exit 2, nothing written."""

from __future__ import annotations

import optuna
import pytest

from hpcflow.cli import main
from test_tune_records import _digests, _job  # tests/ is on sys.path (pytest's default import mode)
from test_tune_refusals import _refusal


@pytest.mark.parametrize("seed", ["-1", str(2**62 + 1), "9223372036854775807"])
def test_a_tune_seed_outside_0_to_2_62_is_refused_with_its_own_range(tmp_path, capsys, seed):
    """A seed is >= 0 (numpy's SeedSequence refuses a negative one) and a job file's seeds lie in [0, 2**62]: the
    refusal named [-2**62, 2**62], a range whose lower half no seed may take."""
    job = _job(tmp_path)
    refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", tmp_path / "s", "--set", f"tune.seed={seed}"])
    assert f"[tune].seed = {seed}: must lie in [0, 2**62]" in refused, refused
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name", ["study.db", "study.sqlite", "study.SQLITE3"])
def test_a_new_storage_path_named_as_an_sqlite_file_is_refused_naming_both_fixes(tmp_path, capsys, monkeypatch,
                                                                                name):
    """A journal was created under the name of an SQLite database, silently; both fixes the refusal names work."""
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = _digests(tmp_path)
    refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", "sdb", "--storage", f"sdb/{name}"])
    stem = name.rsplit(".", 1)[0]
    assert refused.startswith(f"--storage sdb/{name}: "), refused
    assert f"pass --storage sqlite:///sdb/{name} " in refused and f"such as sdb/{stem}.journal" in refused, refused
    assert _digests(tmp_path) == before and not (tmp_path / "sdb").exists()
    submit = ["submit", job, "--out", "sdb", "--executor", "local", "--command", "tune", "--trials", "1",
              "--storage", f"sdb/{name}", "--check"]
    assert _refusal(capsys, submit) == refused
    assert main(["tune", str(job), "--trials", "1", "--out", "sdb", "--storage", f"sqlite:///sdb/{name}",
                 "--quiet"]) == 0
    assert (tmp_path / "sdb" / name).read_bytes().startswith(b"SQLite format 3\0")
    assert main(["tune", str(job), "--trials", "1", "--out", "j", "--storage", f"j/{stem}.journal", "--quiet"]) == 0
    assert len(optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j" / f"{stem}.journal")))).trials) == 1


def test_an_existing_journal_named_as_an_sqlite_file_is_still_continued(tmp_path, capsys, monkeypatch):
    """A journal made under such a name before the refusal keeps working: only a new file is refused."""
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s").mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "s/old.db")))
    optuna.create_study(study_name="other", storage=storage)
    assert main(["tune", str(job), "--trials", "1", "--out", "s2", "--storage", "s/old.db", "--quiet"]) == 0
    assert not (tmp_path / "s/old.db").read_bytes().startswith(b"SQLite")
