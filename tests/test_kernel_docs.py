"""The docs name every kernel a job file accepts with its keys (README, Job files) and the hyperparameters its
summary.json records (docs/outputs.md, `kernel_params`), as the kernels are built from a job."""

import pathlib

from hpcflow.experiments.flow_job import KERNEL_PARAMS, KERNEL_SECTION, check_kernel

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _paragraph(text: str, start: str) -> str:
    """The paragraph of `text` that begins with `start`."""
    at = text.index("\n\n" + start) + 2
    return text[at:text.index("\n\n", at)]


def _built(name: str) -> dict:
    """The `kernel_params` a job's kernel `name` records, its required keys set to a value within their range."""
    kcfg = {"name": name, **{key: KERNEL_SECTION[key].lo + 1.0 for key in KERNEL_PARAMS[name][0]}}
    return check_kernel(kcfg, "job").params()


def test_readme_names_every_kernel_of_a_job_with_its_keys():
    para = _paragraph((ROOT / "README.md").read_text(), "`[kernel]`")
    for name, (required, optional) in KERNEL_PARAMS.items():
        assert f'`"{name}"`' in para, name
        for key in (*required, *optional):
            assert f"`{key}`" in para, (name, key)


def test_outputs_doc_lists_the_kernel_params_each_kernel_records():
    rows = [line for line in (ROOT / "docs" / "outputs.md").read_text().splitlines()
            if line.startswith("| `kernel_params` |") and "as built" in line and "as for a flow" not in line]
    assert len(rows) == 1, rows
    for name in KERNEL_PARAMS:
        params = _built(name)
        assert name in rows[0] if params else "`{}` for " + name in rows[0], name
        for key, value in params.items():
            assert f"`{key}`" in rows[0], (name, key)
            if isinstance(value, str) and key not in KERNEL_SECTION:  # a value no job key sets: said what it is
                assert f'`{key}` ("{value}"' in rows[0], (name, key, value)
