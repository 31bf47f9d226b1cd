"""ConfigError is a ValueError too: the Python API's refusals of an argument outside its choices or range are caught by
`except (TypeError, ValueError)` like the refusals of the arguments beside them, and the CLI still maps a
ConfigError to exit 2 and one line (it catches UserError first)."""

import numpy as np
import pytest

from hpcflow.errors import (ConfigError, InputFileError, MissingDependencyError, OutputPathError, UserError,
                            WriteFailed)
from hpcflow.geometry import Hypersurface


def test_config_error_is_a_user_error_and_a_value_error():
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
    exc = ConfigError("x = 0 is invalid; pass x >= 1")
    assert exc.exit_status == 2 and str(exc) == "x = 0 is invalid; pass x >= 1"
    # the other UserErrors name a file, a path or a package, not an argument's value: no ValueError
    for cls in (InputFileError, OutputPathError, MissingDependencyError):
        assert issubclass(cls, UserError) and not issubclass(cls, ValueError), cls


def _caught(call):
    """The exception `call` raises, which a notebook's `except (TypeError, ValueError)` must catch."""
    try:
        call()
    except (TypeError, ValueError) as exc:
        return exc
    raise AssertionError("no error raised")


def test_the_python_api_refusals_that_are_config_errors_are_caught_as_value_errors():
    from hpcflow.cluster import cluster_points

    X = Hypersurface.fermat(3)
    calls = [lambda: X.sample(0), lambda: Hypersurface.fermat(0),
             lambda: cluster_points(np.ones((4, 5), complex), method="bogus", n_clusters=2)]
    for call in calls:
        exc = _caught(call)
        assert isinstance(exc, ConfigError) and "\n" not in str(exc), exc


def test_the_network_refusals_that_are_config_errors_are_caught_as_value_errors():
    torch = pytest.importorskip("torch")
    from hpcflow.nn.loss import metric_loss
    from hpcflow.nn.model import MetricMLP
    from hpcflow.nn.ntk import empirical_ntk

    model = MetricMLP(10, depth=1, width=4, seed=0)
    x, g = torch.zeros(3, 10, dtype=torch.float64), torch.eye(3, dtype=torch.float64).reshape(1, 9).repeat(3, 1)
    g = g[:, [0, 4, 8, 1, 2, 3, 5, 6, 7]]  # packed identity metrics: diagonal 1, off-diagonal 0
    calls = [lambda: MetricMLP(10, kind="bogus"), lambda: MetricMLP(10, dtype="float16"),
             lambda: metric_loss(g, torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64),
                                 loss="bogus"),
             lambda: empirical_ntk(model, x, g, method="bogus")]
    for call in calls:
        exc = _caught(call)
        assert isinstance(exc, ConfigError), exc


def test_a_config_error_raised_in_a_command_still_ends_in_exit_2_and_one_line(tmp_path, capsys, monkeypatch):
    """Raised where the work starts (past every check): the CLI's UserError handler, not a ValueError handler of
    the command, makes it the one line `hpcflow sample: error: ...` and status 2; nothing is written."""
    from hpcflow.cli import main

    def refuse(*args, **kwargs):
        raise ConfigError("threads = 0 is invalid; pass threads >= 1")

    monkeypatch.setattr(Hypersurface, "sample", refuse)
    out = tmp_path / "points.h5"
    assert main(["sample", "--manifold", "fermat", "--dim", "3", "--n", "50", "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "hpcflow sample: error: threads = 0 is invalid; pass threads >= 1", err
    assert not out.exists()


def test_a_config_error_of_the_environment_ends_a_command_in_exit_2_and_one_line(tmp_path, capsys, monkeypatch):
    """HPCFLOW_THREADS=abc is refused by arguments.env_threads (ConfigError) through the command's own checks."""
    from hpcflow.cli import main

    monkeypatch.setenv("HPCFLOW_THREADS", "abc")
    out = tmp_path / "points.h5"
    assert main(["sample", "--manifold", "fermat", "--dim", "3", "--n", "50", "--seed", "1", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcflow sample: error: HPCFLOW_THREADS='abc'"), lines
    assert not out.exists()


def test_write_failed_stays_an_os_error_only():
    assert issubclass(WriteFailed, OSError) and not issubclass(WriteFailed, ValueError)
