"""An --out whose network run was killed (checkpoint.pt, no summary.json) is refused without --resume; where that
checkpoint.pt is itself damaged (cut short by a copy, a flipped byte), the line says so and gives --force, instead
of pointing to a --resume that would refuse it in turn."""

import os
import struct
import zipfile

import pytest

from hpcflow.cli import main
from test_nn_cli import SMALL, _write  # tests/ is on sys.path (pytest's default import mode)


def _digests(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


@pytest.mark.parametrize("damage", ["sound", "cut", "flipped", "flag", "method"])
def test_a_killed_runs_checkpoint_is_named_damaged_only_where_it_is(tmp_path, capsys, damage):
    job, out = _write(tmp_path, SMALL), tmp_path / "run"
    assert main(["nn", job, "--out", str(out), "--quiet"]) == 0
    os.remove(out / "summary.json")  # as a run killed before its end leaves it
    ck = out / "checkpoint.pt"
    data = bytearray(ck.read_bytes())
    if damage == "cut":
        data = data[: len(data) // 2]
    elif damage == "flipped":  # a byte inside the archive's largest entry (a tensor), not the zip's own records
        with zipfile.ZipFile(ck) as zf:
            entry = max(zf.infolist(), key=lambda i: i.file_size)
        head = entry.header_offset + 30  # the local header: 30 bytes, then the name and the extra field
        name_len, extra_len = struct.unpack("<HH", data[entry.header_offset + 26:head])
        data[head + name_len + extra_len + entry.file_size // 2] ^= 0xFF
    elif damage in ("flag", "method"):  # the central directory's record of an entry: 'encrypted', or no known method
        record = data.index(b"PK\x01\x02")
        data[record + (8 if damage == "flag" else 10)] ^= 0x01 if damage == "flag" else 0x63
    ck.write_bytes(bytes(data))
    before = _digests(out)
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    if damage == "sound":
        assert "holds an interrupted run" in err and "--resume" in err, err
    else:
        assert "holds a damaged checkpoint.pt" in err and "--force" in err and "continue it with" not in err, err
        said = {"flipped": "fails its CRC-32", "cut": "not a zip archive"}.get(damage, "unreadable zip archive")
        assert said in err, err
    assert _digests(out) == before
