"""A checkpoint's root attribute hpcflow_version (the hpcflow that last wrote the file, a string as every run writes
it) holding anything else (an integer, an array, bytes) is a damaged checkpoint, as a leg's hpcflow_version that is
not a string is (`provenance.leg_fault`): one line naming the file, the attribute and its value. A string, whatever
version it names, or no such attribute, is no fault: a resume writes it anew."""

import h5py
import numpy as np
import pytest

from hpcflow.errors import InputFileError
from hpcflow.provenance import check_root_version, root_version_fault

FIX = "start the run again"


def _attrs(tmp_path, **attrs):
    """The root attributes of an HDF5 file holding `attrs`, as h5py reads them back."""
    path = tmp_path / "checkpoint.h5"
    with h5py.File(path, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
    with h5py.File(path, "r") as f:
        return path, dict(f.attrs)


@pytest.mark.parametrize("value, shown", [
    (5, "5"), (np.int32(7), "7"), (0.5, "0.5"), (np.array([1, 2]), "array([1, 2])"),
    (np.array(["0.1.0", "0.1.0"], dtype=h5py.string_dtype()), "array(['0.1.0', '0.1.0'], dtype=object)"),
    (np.bytes_(b"0.1.0"), "b'0.1.0'"),
])
def test_a_root_version_no_run_writes_is_a_damaged_checkpoint(tmp_path, value, shown):
    path, attrs = _attrs(tmp_path, hpcflow_version=value)
    assert root_version_fault(attrs) == "not a string"
    with pytest.raises(InputFileError) as refused:
        check_root_version(attrs, path, FIX)
    line = str(refused.value)
    assert "\n" not in line and line == (f"{path}: attribute hpcflow_version = {shown} is not a string, where a run "
                                         f"writes the version of the hpcflow that last wrote it, a string; the "
                                         f"checkpoint is damaged, {FIX}"), line


@pytest.mark.parametrize("attrs", [{"hpcflow_version": "0.1.0"}, {"hpcflow_version": "0.0.1-old"},
                                   {"hpcflow_version": ""}, {}])
def test_a_root_version_a_run_writes_or_none_is_no_fault(tmp_path, attrs):
    path, read = _attrs(tmp_path, kind="k", **attrs)
    assert root_version_fault(read) is None
    check_root_version(read, path, FIX)  # (no refusal)
