"""Sampling one chart stops, naming the chart, its rate and the fix, once the points found in it bound its rate too
low for the batches left of max_batches to give the rest; never for the charts of the Fermat quintic when the batches
can give the points, whose samples stay those of every chart's sample taken in that chart."""

import math
import re

import numpy as np
import pytest
from scipy.stats import binom

from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.sampling import LINES_PER_BATCH

#: on X, |z_0| >= |z_k| and |dp/dz_4| >= |dp/dz_k| (k = 1, 2, 3) give |z_k| <= 1e-6^(1/4) |z_4|, and then
#: |z_0^5| = |z_1^5 + z_2^5 + z_3^5 + 1e-6 z_4^5| <= 1.1e-6 |z_0|^5: chart (0, 4) holds no point at all
SMALL = Hypersurface.from_monomials(np.eye(5, dtype=np.int64) * 5, [1, 1, 1, 1, 1e-6])


def first_stop(n, max_batches, risk=1e-6):
    """The batches d after which an empty chart is first refused: the rate whose Poisson chance of no point in the
    m = d x 2048 x 5 points seen is risk / (d (d + 1)), ln(d (d + 1) / risk) / m, cannot give n points in all the
    max_batches batches."""
    return next((d for d in range(1, max_batches + 1) if math.log(d * (d + 1) / risk) * max_batches < n * d), None)


@pytest.mark.parametrize("n, max_batches", [(1000, 1000), (500, 1000)])
def test_an_empty_chart_is_refused_before_max_batches(n, max_batches):
    with pytest.raises(ConfigError) as exc:
        SMALL.sample(n, seed=0, chart=(0, 4), max_batches=max_batches, threads=1)
    said = str(exc.value)
    assert "\n" not in said and said.startswith("chart (0, 4) holds too few points: 0 of the ")
    assert "chart=None" in said and "raise max_batches" in said
    m, done = (int(x) for x in re.search(r"0 of the (\d+) points where the lines of (\d+) batches", said).groups())
    assert m == done * LINES_PER_BATCH * 5
    rate = math.log(done * (done + 1) / 1e-6) / m
    assert re.search(r"a rate of at most ([0-9.e+-]+) ", said).group(1) == f"{rate:.2g}"
    assert rate * max_batches * LINES_PER_BATCH * 5 < n
    # and it stops at the first wave after which that holds: a few per cent of max_batches
    first = first_stop(n, max_batches)
    assert first <= done <= first + 4 and done < max_batches
    assert done <= 0.05 * max_batches


def test_an_empty_chart_asked_for_fewer_points_than_its_bound_is_refused_past_max_batches():
    """10 points: no count of the batches tells a chart too poor for 10 points in max_batches from one just rich
    enough (an empty one too has a chance e^-10 of none in all of them), so the refusal is the one past them."""
    assert first_stop(10, 30) is None
    with pytest.raises(ConfigError, match=r"^could not find 10 points in chart \(0, 4\) in 30 batches \(found 0\)"):
        SMALL.sample(10, seed=0, chart=(0, 4), max_batches=30, threads=1)


class Degree1:
    """A surface of degree 1 for `chart_hopeless`: 2048 intersection points a batch."""
    degree = 1


def waves(rng, n, max_batches, rate):
    """(have, done) after each wave of a simulated sampling of one chart in which each batch gives a Poisson count of
    mean `rate`, with waves as `sample_waves` forms them on one rank of one thread (10 charts: what the missing points
    need, at most 4 batches), while points are missing and batches are left."""
    have = done = 0
    while have < n and done < max_batches:
        wave = max(1, min(-(-(n - have) * 10 // LINES_PER_BATCH), 4, max_batches - done))
        have += int(rng.poisson(rate, wave).sum())
        done += wave
        if have < n and done < max_batches:
            yield have, done


def test_a_chart_whose_rate_just_suffices_is_stopped_at_most_with_the_stated_chance_over_all_waves(monkeypatch):
    """A chart whose batches give n points in max_batches in expectation, tested after each of its ~50 waves: the
    share of simulated samplings it stops is within the stated risk (0.05 here, to be measurable), by a binomial
    margin (the count of 2000 samplings stopped exceeds its 1 - 1e-6 quantile at a chance 0.05 with a chance below
    1e-6). A risk spent anew at each wave is exceeded many times over."""
    from hpcflow.geometry import sampling

    risk, n, max_batches, trials = 0.05, 2000, 200, 2000
    monkeypatch.setattr(sampling, "CHART_RATE_RISK", risk)
    rng = np.random.default_rng(7)
    stopped = 0
    for _ in range(trials):
        for have, done in waves(rng, n, max_batches, n / max_batches):
            if sampling.chart_hopeless(Degree1(), (0, 1), n, have, done, max_batches) is not None:
                stopped += 1
                break
    assert stopped <= binom.ppf(1 - 1e-6, trials, risk), stopped


def test_a_chart_too_poor_for_the_points_is_stopped():
    """The same simulation at a rate a third of the one that suffices: every sampling is stopped, early."""
    from hpcflow.geometry import sampling

    n, max_batches = 2000, 200
    rng = np.random.default_rng(8)
    for _ in range(50):
        said = next(done for have, done in waves(rng, n, max_batches, n / max_batches / 3)
                    if sampling.chart_hopeless(Degree1(), (0, 1), n, have, done, max_batches) is not None)
        assert said <= max_batches // 2


@pytest.fixture(scope="module")
def every():
    return Hypersurface.fermat(3).sample(9000, seed=0, threads=1)  # within block 0 (10240 intersections)


@pytest.mark.parametrize("chart", Hypersurface.fermat(3).charts)
def test_every_quintic_chart_samples_few_points_as_before(chart, every):
    """The sample of one chart is the first n points of that chart in the sample of every chart, by block order."""
    ps = Hypersurface.fermat(3).sample(5, seed=0, chart=chart, threads=1)
    mine = np.flatnonzero((every.chart == chart).all(axis=1))[:5]
    assert len(mine) == 5
    for name in ("points", "weights", "omega2", "g_fs", "chart", "jacobian"):
        np.testing.assert_array_equal(getattr(ps, name), getattr(every, name)[mine])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_chart_the_batches_can_fill_is_not_stopped(seed):
    """Chart (0, 1) holds ~1/20 of the points: ~512 a batch, so 10 batches give ~5100 for 4000 (a wave of 4)."""
    ps = Hypersurface.fermat(3).sample(4000, seed=seed, chart=(0, 1), threads=1, max_batches=10)
    assert len(ps) == 4000 and (ps.chart == (0, 1)).all()


def _notes(err: str) -> list:
    return [line for line in err.splitlines() if line.startswith("chart (0, 4): only ")]


def test_an_empty_chart_asked_for_few_points_says_why_it_goes_on_once(capsys):
    """10 points: the sampling cannot stop before max_batches (above), and says so in one line, once, early."""
    with pytest.raises(ConfigError, match=r"^could not find 10 points in chart \(0, 4\) in 30 batches"):
        SMALL.sample(10, seed=0, chart=(0, 4), max_batches=30, threads=1)
    notes = _notes(capsys.readouterr().err)
    assert len(notes) == 1, notes
    done = int(re.search(r"the lines of (\d+) batch", notes[0]).group(1))
    assert done <= 4
    assert "10 points are too few to tell it from a chart just rich enough before all 30 batches" in notes[0]
    assert "chart=None" in notes[0] and "lower max_batches" in notes[0]


def test_an_empty_chart_whose_stop_comes_late_names_the_batch_it_stops_at(capsys):
    """500 points in 1000 batches: stopped after ~45 batches (`first_stop`); the line said after the first waves
    names that batch, which the refusal then reaches (the waves end on it or up to 4 batches past it)."""
    with pytest.raises(ConfigError) as exc:
        SMALL.sample(500, seed=0, chart=(0, 4), max_batches=1000, threads=1)
    stopped = int(re.search(r"the lines of (\d+) batches", str(exc.value)).group(1))
    notes = _notes(capsys.readouterr().err)
    assert len(notes) == 1, notes
    named = int(re.search(r"the sampling stops at about batch (\d+) ", notes[0]).group(1))
    assert named == first_stop(500, 1000)
    assert named <= stopped <= named + 4


@pytest.mark.parametrize("n, have, d", [(300, 0, 1), (300, 0, 10), (300, 1, 1000), (300, 2, 1000), (300, 1, 2000),
                                        (300, 0, 3000), (10, 0, 1), (10, 0, 3000)])
def test_the_line_is_said_where_the_stop_is_far_and_names_the_first_batch_the_test_refuses(n, have, d):
    """A scan of the batch counts past d (the line finds it by bisection): the first at which `chart_hopeless` refuses
    with the count found so far; the line is said where that is past 10 d (or there is none), naming it."""
    from hpcflow.geometry import sampling

    max_batches = 100_000  # 2048 intersection points a batch; the count found falls short of the rate
    assert have * max_batches < n * d
    said = sampling.chart_slow_note(Degree1(), (0, 1), n, have, d, max_batches, 0.05)
    first = next((k for k in range(d + 1, max_batches)
                  if sampling.chart_hopeless(Degree1(), (0, 1), n, have, k, max_batches) is not None), None)
    if first is not None and first <= 10 * d:
        assert said is None, (said, first)
    elif first is None:
        assert said is not None and f"{n} points are too few to tell it" in said, said
    else:
        assert said is not None and f"stops at about batch {first} " in said, (said, first)
        assert f"about {0.05 * (first - d):.0f} s more" in said


def test_an_empty_chart_stopped_soon_says_nothing_before_its_refusal(capsys):
    """As many points as the n = 1e5 stop is made for: the refusal alone, after ~20 batches."""
    with pytest.raises(ConfigError, match=r"^chart \(0, 4\) holds too few points"):
        SMALL.sample(10**5, seed=0, chart=(0, 4), threads=1)
    assert capsys.readouterr().err.strip() == ""


def test_a_chart_the_batches_fill_says_nothing(capsys):
    Hypersurface.fermat(3).sample(4000, seed=0, chart=(0, 1), threads=1, max_batches=10)
    Hypersurface.fermat(3).sample(10, seed=0, chart=(0, 1), threads=1, max_batches=10)
    assert "chart" not in capsys.readouterr().err
