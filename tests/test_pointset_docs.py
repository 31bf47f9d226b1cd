"""The docs say where PointSet files are read: by `PointSet.load` (the Python API) alone, no command."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands_that_load_point_sets() -> list:
    return [p.name for p in sorted((ROOT / "hpcflow" / "commands").glob("*.py")) if "PointSet.load" in p.read_text()]


def test_readme_bad_input_row_of_pointset_files_matches_who_reads_them():
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| PointSet files")]
    assert len(rows) == 1, rows
    row = rows[0]
    assert "PointSet.load" in row and "InputFileError" in row
    if not _commands_that_load_point_sets():  # no command reads them: no exit status to promise
        assert "exit 2" not in row and "no command" in row


def test_outputs_doc_says_pointset_files_are_read_by_the_api_alone():
    text = (ROOT / "docs" / "outputs.md").read_text()
    section = text[text.index("## sample: PointSet file"):]
    section = section[:section.index("\n## ", 3)]
    assert "PointSet.load" in section
    if not _commands_that_load_point_sets():
        assert "No command reads these files" in section


def test_readme_says_what_subset_shares_as_it_does():
    """`ps.subset(idx)` is `ps[idx]` (its docstring): views for an int or a slice, copies for masks and index arrays;
    the README said every subset copied its rows."""
    import numpy as np

    from hpcflow.geometry import Hypersurface

    text = " ".join((ROOT / "README.md").read_text().split())
    assert "`ps.subset(...)`) copy the rows" not in text
    assert ("`ps.subset(idx)` is `ps[idx]`: views for an integer or a slice, copies for a mask or an index array"
            in text)
    ps = Hypersurface.fermat(3).sample(10, seed=0, threads=1)
    for idx, shares in ((2, True), (slice(0, 3), True), (np.arange(10) < 3, False), ([0, 3], False)):
        for sub in (ps.subset(idx), ps[idx]):
            assert all(np.shares_memory(getattr(sub, k), getattr(ps, k)) == shares
                       for k in ("points", "weights", "omega2", "g_fs", "chart")), idx
