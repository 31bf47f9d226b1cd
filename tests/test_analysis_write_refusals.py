"""The refusals of analysis/ scripts' write (hpcflow.analysis.script.write) name the fix that works: a file the script
did not write is to be moved away (--force would refuse it too), one it wrote is replaced by --force, and a record
(.hpcflow_NAME.json) that cannot be read is said to be so, not to "not list" the file."""

import re

import pytest

from hpcflow.analysis.products import Product
from hpcflow.analysis.script import write
from hpcflow.errors import OutputPathError

TEXT = "| run |\n|---|\n| a |\n"


def _product(text=TEXT):
    return Product(texts={"table1.md": text})


def _files(out):
    return {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize("force", [False, True])
def test_a_foreign_file_is_to_be_moved_away_with_or_without_force(tmp_path, force):
    out = tmp_path / "f"
    out.mkdir()
    (out / "table1.md").write_text("mine")
    with pytest.raises(OutputPathError) as err:
        write(_product(), str(out), name="table1", force=force)
    msg = str(err.value)
    assert msg.startswith(f"--out {out}: {out / 'table1.md'} ") and "was not written by table1.py" in msg, msg
    assert msg.endswith("move it away or choose another --out") and "pass --force" not in msg, msg
    assert _files(out) == {"table1.md": b"mine"}


def test_an_earlier_output_is_still_to_be_replaced_with_force(tmp_path):
    out = tmp_path / "f"
    write(_product(), str(out), name="table1")
    with pytest.raises(OutputPathError, match=re.escape(f"{out / 'table1.md'} exists (an earlier table1.py output); "
                                                        "pass --force")):
        write(_product("| run |\n|---|\n| b |\n"), str(out), name="table1")
    (out / "table1.md").write_text("edited")
    with pytest.raises(OutputPathError, match=r"\(an earlier table1\.py output, changed since\); pass --force"):
        write(_product(), str(out), name="table1")
    write(_product(), str(out), name="table1", force=True)
    assert (out / "table1.md").read_text() == TEXT


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("record", ["{bad", '{"files": 3}'])
def test_a_record_that_cannot_be_read_is_said_so(tmp_path, force, record):
    out = tmp_path / "f"
    out.mkdir()
    (out / "table1.md").write_text("whose?")
    (out / ".hpcflow_table1.json").write_text(record)
    with pytest.raises(OutputPathError) as err:
        write(_product(), str(out), name="table1", force=force)
    msg = str(err.value)
    assert "does not list" not in msg and ".hpcflow_table1.json there, the record of the files table1.py wrote, " \
        "cannot be read" in msg and msg.endswith("move it away or choose another --out"), msg
    assert _files(out) == {"table1.md": b"whose?", ".hpcflow_table1.json": record.encode()}
    (out / "table1.md").unlink()  # moved away: the record is written anew
    write(_product(), str(out), name="table1", force=force)
    assert (out / "table1.md").read_text() == TEXT and '"table1.md"' in (out / ".hpcflow_table1.json").read_text()


@pytest.mark.parametrize("force", [False, True])
def test_an_absent_record_is_said_absent_not_to_leave_the_file_out(tmp_path, force):
    out = tmp_path / "f"
    out.mkdir()
    (out / "table1.md").write_text("mine")
    with pytest.raises(OutputPathError) as err:
        write(_product(), str(out), name="table1", force=force)
    absent = str(err.value)
    assert "does not list" not in absent and "there is no .hpcflow_table1.json there" in absent, absent
    assert absent.endswith("move it away or choose another --out"), absent
    assert _files(out) == {"table1.md": b"mine"}
    listing = tmp_path / "g"  # a record there that lists another file only
    write(Product(texts={"other.md": TEXT}), str(listing), name="table1")
    (listing / "table1.md").write_text("mine")
    with pytest.raises(OutputPathError) as err:
        write(_product(), str(listing), name="table1", force=force)
    listed = str(err.value)
    assert ".hpcflow_table1.json there does not list it" in listed and "there is no" not in listed, listed
    assert listed.endswith("move it away or choose another --out"), listed
