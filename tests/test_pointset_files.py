"""PointSet files that are malformed (attributes, dataset kinds, dtypes, shapes, values) raise InputFileError
naming the file and the attribute or dataset; a good file still loads exactly."""

from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pytest

from hpcflow.errors import InputFileError, OutputPathError
from hpcflow.geometry import Hypersurface, PointSet
from hpcflow.geometry.pointset import RESERVED


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("ps") / "good.h5"
    Hypersurface.fermat(3).sample(40, seed=0).save(path)
    return path


def _attr(name, value):
    def mutate(f):
        f.attrs[name] = value
    return mutate


def _replace(name, fn):
    def mutate(f):
        data = fn(f[name][()])
        del f[name]
        f[name] = data
    return mutate


def _group(name):
    def mutate(f):
        del f[name]
        f.create_group(name)
    return mutate


def _set_entry(name, index, value):
    def mutate(f):
        data = f[name][()]
        data[index] = value
        f[name][...] = data
    return mutate


CASES = [
    ("manifold", _attr("manifold", "{not json")),
    ("manifold", _attr("manifold", "[1, 2]")),
    ("manifold", _attr("manifold", '{"monomials": [[5, 0, 0, 0, 0]]}')),
    ("manifold", _attr("manifold", '{"monomials": [[3, 0, 0, 0, 0]], "coefficients": [[1, 0]]}')),
    ("manifold", _attr("manifold", '{"monomials": "x", "coefficients": [[1, 0]]}')),
    ("seed", _attr("seed", "{")),
    ("seed", _attr("seed", "-3")),
    ("seed", _attr("seed", "true")),
    ("seed", _attr("seed", "1.5")),
    ("drawn_n", _attr("drawn_n", -1)),
    ("drawn_rows", _attr("drawn_rows", "[[0, 40]]")),  # without drawn_n
    ("n_dropped", _attr("n_dropped", -3)),
    ("n_dropped", _attr("n_dropped", "\"many\"")),
    ("points", _replace("points", lambda a: a.real)),
    ("points", _replace("points", lambda a: a[:, :4])),
    ("weights", _replace("weights", lambda a: a[:-1])),
    ("g_fs", _replace("g_fs", lambda a: a[:, :2, :2])),
    ("chart", _replace("chart", lambda a: a.astype(float))),
    ("chart", _group("chart")),
    ("points", _set_entry("points", (3, 2), np.nan)),
    ("weights", _set_entry("weights", 5, np.inf)),
    ("weights", _set_entry("weights", 5, -1.0)),
    ("omega2", _set_entry("omega2", 0, 0.0)),
    ("g_fs", _set_entry("g_fs", (1, 0, 0), np.nan)),
    ("chart", _set_entry("chart", (2, 0), 7)),
    ("chart", _set_entry("chart", (2, 1), -1)),
    ("points", _set_entry("points", (4, 3), 0.7 + 0.1j)),  # off the quintic
]


def _mutated(tmp_path, good, mutate):
    """A copy of the good file changed in place by mutate(h5py.File)."""
    path = tmp_path / "bad.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        mutate(f)
    return path


def _refusal(path) -> str:
    with pytest.raises(InputFileError) as exc:
        PointSet.load(path)
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg
    return msg


@pytest.mark.parametrize("name, mutate", CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_malformed_pointset_is_an_input_file_error_naming_file_and_dataset(tmp_path, good, name, mutate):
    assert f"'{name}'" in _refusal(_mutated(tmp_path, good, mutate))


def test_good_file_still_loads_exactly(good):
    ps = PointSet.load(good)
    with h5py.File(good) as f:
        assert np.array_equal(ps.points, f["points"][()]) and np.array_equal(ps.weights, f["weights"][()])
    assert len(ps) == 40 and np.isfinite(ps.sigma())


def _labelled(**changes):
    """The manifold attribute with its name or params changed, its monomials and coefficients kept."""
    def mutate(f):
        d = json.loads(f.attrs["manifold"])
        d.update(changes)
        f.attrs["manifold"] = json.dumps(d)
    return mutate


@pytest.fixture(scope="module")
def dwork_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ps") / "dwork.h5"
    Hypersurface.dwork(3, 0.7).sample(40, seed=0).save(path)
    return path


@pytest.mark.parametrize("changes, words", [
    (dict(name="fermat", params={"dim": 3}), "fermat(dim=3) gives monomial (1, 1, 1, 1, 1) the coefficient 0"),
    (dict(params={"dim": 3, "psi": "0.5"}), "psi=0.5) gives monomial (1, 1, 1, 1, 1) the coefficient -2.5"),
    (dict(params={"dim": 4, "psi": "(0.7+0j)"}), "lies in P^5, but the definition's monomials in P^4"),
    (dict(params={"dim": 3}), "dwork takes params dim, psi, not dim"),
])
def test_a_family_name_that_does_not_give_the_stored_polynomial_is_refused(tmp_path, dwork_file, changes, words):
    """The manifold attribute names a family and its params besides the polynomial: a Dwork set relabelled Fermat
    (the psi monomial kept) loaded as a 'fermat' with 6 terms, and psi = 0.5 over the coefficients of psi = 0.7
    (-(n+1) psi = -3.5) loaded as psi = 0.5. The family rebuilt from the params must be the stored polynomial."""
    msg = _refusal(_mutated(tmp_path, dwork_file, _labelled(**changes)))
    assert "attribute 'manifold'" in msg and words in msg and "name it custom" in msg
    assert PointSet.load(dwork_file).manifold == Hypersurface.dwork(3, 0.7)
    assert PointSet.load(_mutated(tmp_path, dwork_file, _labelled(name="custom"))).manifold.name == "custom"


@pytest.mark.parametrize("mutate, words", [
    (_attr("kind", "other.Kind"), "attribute 'kind' is 'other.Kind', expected 'hpcflow.PointSet'"),
    (lambda f: f.attrs.__delitem__("kind"), "has no attribute 'kind'"),
    (lambda f: f.__delitem__("g_fs"), "a PointSet without dataset 'g_fs'"),
    (_replace("points", lambda a: a[0, 0]), "dataset 'points' has shape () (a scalar), expected a 2-D dataset (N, 5)"),
    (_replace("points", lambda a: a[0]), "dataset 'points' has shape (5,), expected a 2-D dataset (N, 5)"),
])
def test_a_file_of_another_kind_or_layout_is_named_as_such(tmp_path, good, mutate, words):
    """A wrong kind was reported as 'missing kind/manifold attributes', a missing dataset in the same words, and a
    scalar points dataset as 'expected (-1, 5) for -1 points'."""
    assert words in _refusal(_mutated(tmp_path, good, mutate))


def test_a_directory_is_named_a_directory(tmp_path):
    """PointSet.load(a directory) said it 'does not exist' and to create it with 'hpcflow sample --out DIR'."""
    with pytest.raises(InputFileError, match=f"^{tmp_path} is a directory, not a PointSet file") as exc:
        PointSet.load(tmp_path)
    assert "does not exist" not in str(exc.value)


@pytest.mark.parametrize("attrs, words", [
    ({"m": {"a": 1}}, "attrs['m'] = {'a': 1} (dict)"), ({"m": None}, "attrs['m'] = None (NoneType)"),
    ({"m": [1, "x"]}, "attrs['m'] = [1, 'x'] (list)"), ({"m": 10**30}, "attrs['m'] = 10"), ({3: 1}, "the name 3"),
    ([("m", 1)], "attrs is a list"),
])
def test_save_refuses_attributes_hdf5_cannot_hold_before_any_file_exists(tmp_path, good, attrs, words):
    """h5py raised its own TypeError ('Object dtype dtype('O') has no native HDF5 equivalent') naming no attribute,
    after the temporary file was created; str, numbers and numeric lists are saved and read back."""
    ps = PointSet.load(good)
    with pytest.raises(TypeError) as exc:
        ps.save(tmp_path / "x.h5", attrs=attrs)
    assert words in str(exc.value) and "PointSet.save" in str(exc.value) and "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []
    ps.attrs["m"] = {"a": 1}
    with pytest.raises(TypeError, match=r"PointSet\.attrs\['m'\]"):
        ps.save(tmp_path / "x.h5")
    ps.attrs.clear()
    ps.save(tmp_path / "x.h5", attrs={"s": "text", "n": 3, "c": 1 + 2j, "v": [1.5, 2.0]})
    with h5py.File(tmp_path / "x.h5") as f:
        assert (f.attrs["s"], f.attrs["n"], f.attrs["c"], list(f.attrs["v"])) == ("text", 3, 1 + 2j, [1.5, 2.0])


def test_save_refuses_directories_pseudo_files_and_empty_names_before_writing(tmp_path, good):
    ps = PointSet.load(good)
    (tmp_path / "d").mkdir()
    for target, words in ((tmp_path / "d", "directory"), ("", "empty"), ("/proc/self/x.h5", "/proc"),
                          (tmp_path / "missing" / "x.h5", "missing")):
        with pytest.raises(OutputPathError, match=words):
            ps.save(target, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and list((tmp_path / "d").iterdir()) == []


def test_save_refuses_a_path_that_is_not_a_file_name(tmp_path, good, monkeypatch):
    """ps.save(123) was the OS's "expected str, bytes or os.PathLike object, not int" (and bytes a TypeError of str
    methods): one TypeError naming path; nothing is written."""
    ps = PointSet.load(good)
    monkeypatch.chdir(tmp_path)
    for bad in (123, None, b"x.h5", ["x.h5"]):
        with pytest.raises(TypeError, match=r"^path=.* is invalid; pass a file name \(a str or pathlib.Path\), e.g. "
                                            r"'points.h5'$"):
            ps.save(bad)
    assert list(tmp_path.iterdir()) == []


def test_save_over_an_existing_file_names_the_api_argument(tmp_path, good):
    """PointSet.save is API: an existing file is refused with the keyword that overwrites it (force=True), not the
    command line's --force; the file is kept as it was."""
    ps, target = PointSet.load(good), tmp_path / "x.h5"
    target.write_bytes(b"old")
    with pytest.raises(OutputPathError, match=r"exists; choose another path or pass force=True") as exc:
        ps.save(target)
    assert "--" not in str(exc.value) and target.read_bytes() == b"old"
    ps.save(target, force=True)
    assert len(PointSet.load(target)) == len(ps)


@pytest.mark.parametrize("target, says", [
    ("", "path='' is empty; pass a file name, e.g. path='points.h5'"),
    ("  ", "path='  ' is blank; pass a file name, e.g. path='points.h5'"),
    ("a\0b.h5", "path='a\\x00b.h5' contains a NUL byte; choose another path"),
    ("/proc/self/x.h5", "path='/proc/self/x.h5' lies under /proc, which is not storage; choose another path"),
])
def test_save_names_its_path_argument_not_a_command_option(tmp_path, good, monkeypatch, target, says):
    """ps.save("") said "--out is empty; give a path, e.g. --out points.h5": a Python call has no --out. The
    refusal names the argument path; nothing is written (force=True alike)."""
    ps = PointSet.load(good)
    monkeypatch.chdir(tmp_path)
    for force in (False, True):
        with pytest.raises(OutputPathError) as exc:
            ps.save(target, force=force)
        assert str(exc.value) == says and "--" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_a_path_that_is_not_a_file_name_as_save_does(tmp_path, good, monkeypatch):
    """PointSet.load(None) was the OS's "expected str, bytes or os.PathLike object, not NoneType" (bytes were taken,
    which save refuses): the TypeError save gives, naming path; an empty name or a NUL byte is one InputFileError
    naming path (it said " does not exist; create it with 'hpcflow sample --out '")."""
    ps = PointSet.load(good)
    monkeypatch.chdir(tmp_path)
    for bad in (None, 123, str(good).encode(), [str(good)]):
        with pytest.raises(TypeError) as saved:
            ps.save(bad)
        with pytest.raises(TypeError) as loaded:
            PointSet.load(bad)
        assert str(loaded.value) == str(saved.value)
        assert re.fullmatch(r"path=.* is invalid; pass a file name \(a str or pathlib.Path\), e.g. 'points.h5'",
                            str(loaded.value))
    for bad, says in (("", "path='' is empty; pass the name of a PointSet file, e.g. 'points.h5'"),
                      (" ", "path=' ' is blank; pass the name of a PointSet file, e.g. 'points.h5'"),
                      (f"{good}\0", f"path={str(good) + chr(0)!r} contains a NUL byte")):
        with pytest.raises(InputFileError) as exc:
            PointSet.load(bad)
        assert str(exc.value).startswith(says) and "--out" not in str(exc.value)
    assert len(PointSet.load(str(good))) == len(PointSet.load(good)) == len(ps)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("force", ["yes", "no", "", 1, 0, None, np.int64(1), [True]])
def test_save_refuses_a_force_that_is_not_a_bool(tmp_path, good, force):
    """save(path, force="yes") overwrote an existing file, and so would force="no" (truthiness): force is True or
    False (a NumPy bool too), as kernel_flow's weighted; anything else one TypeError naming it, the file kept."""
    ps, target = PointSet.load(good), tmp_path / "x.h5"
    target.write_bytes(b"old")
    with pytest.raises(TypeError, match=r"^force=.* is invalid; pass True or False$"):
        ps.save(target, force=force)
    with pytest.raises(TypeError, match=r"^force="):
        ps.save(tmp_path / "new.h5", force=force)  # refused where no file would be overwritten too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"] and target.read_bytes() == b"old"
    with pytest.raises(OutputPathError, match="exists"):
        ps.save(target, force=np.bool_(False))
    ps.save(target, force=np.bool_(True))
    assert len(PointSet.load(target)) == len(ps)


# ---- data that do not fit together --------------------------------------------------------------------------
def _rows(name, fn):
    def mutate(f):
        data = f[name][()]
        f[name][...] = fn(data)
    return mutate


def _upper_plus_one(g):
    a, b = np.triu_indices(g.shape[-1], 1)
    g[:, a, b] += 1.0
    return g


def _row_times(k, factor):
    def fn(a):
        a[k] = a[k] * factor
        return a
    return fn


def _other_chart(f):
    """Row 3 eliminates another coordinate than its own J: a chart that covers the point, but not the one whose g_FS,
    |Omega|^2 and weight the file holds."""
    chart = f["chart"][()]
    chart[3, 1] = next(k for k in range(f["points"].shape[1]) if k not in chart[3])
    f["chart"][...] = chart


MISFITS = [
    ("g_fs", "is not Hermitian", _rows("g_fs", _upper_plus_one)),
    ("omega2", "does not agree", _rows("omega2", lambda a: 3 * a)),
    ("g_fs", "does not agree", _rows("g_fs", lambda a: 2 * a)),
    ("weights", "does not agree", _rows("weights", _row_times(7, 1 + 1e-9))),
    ("g_fs", "does not agree", _rows("g_fs", _row_times(7, 1 + 1e-9))),
    ("omega2", "does not agree", _rows("omega2", _row_times(7, 1 + 1e-9))),
    ("g_fs", "does not agree", _other_chart),
]


@pytest.mark.parametrize("name, words, mutate", MISFITS, ids=[f"{i}-{c[0]}" for i, c in enumerate(MISFITS)])
def test_data_that_do_not_fit_their_points_are_refused_naming_file_and_dataset(tmp_path, good, name, words, mutate):
    """g_FS must be Hermitian and g_FS, |Omega|^2 and the weights those the points and charts give (eq. B.11's
    inputs): a changed entry (even by 1e-9 relative) is refused before sigma could change."""
    msg = _refusal(_mutated(tmp_path, good, mutate))
    assert f"dataset '{name}' {words}" in msg and "Hypersurface.point_set" in msg


def test_a_chart_that_does_not_cover_its_point_is_refused(tmp_path, good):
    """z = (1, -1, 0, 0, 0) lies on the Fermat quintic, where dp/dz_2 = 5 z_2^4 = 0: chart (0, 2) eliminates a
    coordinate the point cannot be solved for (its Jacobian is infinite)."""
    def mutate(f):
        z, chart = f["points"][()], f["chart"][()]
        z[0], chart[0] = [1, -1, 0, 0, 0], [0, 2]
        f["points"][...], f["chart"][...] = z, chart

    msg = _refusal(_mutated(tmp_path, good, mutate))
    assert "dataset 'chart' gives row 0 the chart (0, 2), which does not cover the point" in msg


@pytest.mark.parametrize("name", ["g_fs", "omega2", "weights"])
def test_roundoff_sized_differences_from_the_points_are_accepted_and_kept(tmp_path, good, name):
    """Data computed from the points in another order (another machine, another build) differ by a few ulps: they
    load, as stored, while a difference of 1e-9 relative in the same entries does not."""
    for ulps, loads in ((3, True), (None, False)):
        path = tmp_path / f"{name}_{ulps}.h5"
        shutil.copy(good, path)
        with h5py.File(path, "r+") as f:
            data = f[name][()]
            view = data.view(np.float64)  # the real and imaginary parts of complex entries
            view[...] = view * (1 + 1e-9) if ulps is None else view + 3 * np.spacing(view)
            f[name][...] = data
        if loads:
            np.testing.assert_array_equal(getattr(PointSet.load(path), name), data)
        else:
            with pytest.raises(InputFileError, match=f"dataset '{name}' does not agree"):
                PointSet.load(path)


LOWER = [("weights", np.float32), ("omega2", np.float32), ("g_fs", np.complex64), ("weights", np.float16),
         ("omega2", np.float16)]


@pytest.mark.parametrize("name, dtype", LOWER, ids=[f"{n}-{np.dtype(t).name}" for n, t in LOWER])
def test_lower_precision_floats_are_refused_naming_the_dataset_and_its_dtype(tmp_path, good, name, dtype):
    """Geometry is float64 / complex128: a dataset stored rounded to float32 / complex64 (which loaded, rounded,
    while complex64 points were refused) is refused in one line naming the file, the dataset, its dtype and the
    fix; PointSet.save refuses such a set before writing it (`test_save_refuses_...`)."""
    path = _mutated(tmp_path, good, _replace(name, lambda a: a.astype(dtype)))
    msg = _refusal(path)
    want = "complex128" if np.dtype(dtype).kind == "c" else "float64"
    assert msg.startswith(f"{path}: dataset '{name}' is {np.dtype(dtype).name}, of lower precision than the {want}")
    assert f"store it as {want}" in msg and "\n" not in msg
    assert f"h5py: f['{name}'][...].astype('{'c16' if want == 'complex128' else 'f8'}')" in msg, msg


HIGHER = [("weights", np.longdouble), ("omega2", np.longdouble), ("g_fs", np.clongdouble),
          ("points", np.clongdouble)]


@pytest.mark.parametrize("name, dtype", HIGHER, ids=[f"{n}-{np.dtype(t).name}" for n, t in HIGHER])
def test_long_double_floats_are_refused_with_the_conversion(tmp_path, good, name, dtype):
    """A longdouble / clongdouble dataset was read rounded to float64 without a word, though float datasets must be
    float64 / complex128: it is refused like a lower precision one, in one line naming the dtype and the conversion,
    which makes a file that loads. (Where longdouble is float64 itself, the file is a float64 one and loads.)"""
    path = _mutated(tmp_path, good, _replace(name, lambda a: a.astype(dtype)))
    want = np.dtype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64)
    if np.dtype(dtype).itemsize == want.itemsize:  # (a platform whose long double is a double)
        np.testing.assert_array_equal(getattr(PointSet.load(path), name), getattr(PointSet.load(good), name))
        return
    msg = _refusal(path)
    assert msg.startswith(f"{path}: dataset '{name}' is {np.dtype(dtype).name}, of higher precision than the "
                          f"{want.name}"), msg
    code = "c16" if want.kind == "c" else "f8"
    assert f"store it as {want.name}" in msg and f"h5py: f['{name}'][...].astype('{code}')" in msg, msg
    # the conversion named, done with h5py, gives the file's values back in float64
    with h5py.File(path, "r+") as f:
        _replace(name, lambda a: a.astype(code))(f)
    np.testing.assert_array_equal(getattr(PointSet.load(path), name), getattr(PointSet.load(good), name))


@pytest.mark.parametrize("name", ["points", "weights", "omega2", "g_fs"])
def test_float64_of_the_other_byte_order_loads(tmp_path, good, name):
    """float64 / complex128 stored big- or little-endian alike are the geometry's precision: admitted, same values."""
    other = ">" if np.little_endian else "<"
    path = _mutated(tmp_path, good, _replace(name, lambda a: a.astype(a.dtype.newbyteorder(other))))
    with h5py.File(path, "r") as f:
        assert f[name].dtype.byteorder == other
    np.testing.assert_array_equal(getattr(PointSet.load(path), name), getattr(PointSet.load(good), name))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.uint64])
def test_charts_of_any_integer_dtype_load_exactly(tmp_path, good, dtype):
    ps = PointSet.load(_mutated(tmp_path, good, _replace("chart", lambda a: a.astype(dtype))))
    assert ps.chart.dtype == np.int64
    np.testing.assert_array_equal(ps.chart, PointSet.load(good).chart)


def test_an_unsigned_chart_beyond_int64_is_refused_not_wrapped(tmp_path, good):
    """2**64 - 1 in a uint64 chart is no chart index (it would read as -1 in int64)."""
    msg = _refusal(_mutated(tmp_path, good, _replace("chart", lambda a: np.where(
        np.arange(a.size).reshape(a.shape) == 0, np.iinfo(np.uint64).max, a).astype(np.uint64))))
    assert "dataset 'chart' holds a chart that does not exist" in msg, msg


def test_single_precision_points_are_refused_for_their_precision(tmp_path, good):
    """complex64 points lie ~1e-7 off X: the refusal says so (not that the points are off the hypersurface)."""
    msg = _refusal(_mutated(tmp_path, good, _replace("points", lambda a: a.astype(np.complex64))))
    assert "dataset 'points' is complex64" in msg and "complex128" in msg and "off the hypersurface" not in msg


# ---- save writes only what load reads -----------------------------------------------------------------------
def _set(ps, **fields):
    data = {name: getattr(ps, name) for name in ("points", "weights", "omega2", "g_fs", "chart")}
    data.update(fields)
    return PointSet(ps.manifold, **data, n_dropped=ps.n_dropped, seed=ps.seed)


def _cast(ps, name, dtype):
    return _set(ps, **{name: getattr(ps, name).astype(dtype)})


def _entry(ps, name, index, value):
    data = getattr(ps, name).copy()
    data[index] = value
    return _set(ps, **{name: data})


IN_MEMORY = [  # (what, refused by save, make)
    ("rows of shape (1, N, n+1)", True, lambda ps: _set(ps, **{k: getattr(ps, k)[None] for k in
                                                               ("points", "weights", "omega2", "g_fs", "chart")})),
    ("one row's coordinates", True, lambda ps: _set(ps, **{k: getattr(ps, k)[3] for k in
                                                           ("points", "weights", "omega2", "g_fs", "chart")})),
    ("complex64 points", True, lambda ps: _cast(ps, "points", np.complex64)),
    ("real g_fs", True, lambda ps: _set(ps, g_fs=ps.g_fs.real)),
    ("omega2 x 3", True, lambda ps: _set(ps, omega2=3 * ps.omega2)),
    ("non-Hermitian g_fs", True, lambda ps: _entry(ps, "g_fs", (2, 0, 1), 1.0)),
    ("NaN weight", True, lambda ps: _entry(ps, "weights", 4, np.nan)),
    ("chart out of range", True, lambda ps: _entry(ps, "chart", (1, 1), 9)),
    ("point off X", True, lambda ps: _entry(ps, "points", (5, 3), 0.7 + 0.1j)),
    ("n_dropped < 0", True, lambda ps: setattr(ps, "n_dropped", -2) or ps),
    ("object seed", True, lambda ps: setattr(ps, "seed", object()) or ps),
    ("float32 weights", True, lambda ps: _cast(ps, "weights", np.float32)),
    ("complex64 g_fs", True, lambda ps: _cast(ps, "g_fs", np.complex64)),
    ("float16 omega2", True, lambda ps: _cast(ps, "omega2", np.float16)),
    ("int8 chart", False, lambda ps: _cast(ps, "chart", np.int8)),
    ("NumPy seed", False, lambda ps: setattr(ps, "seed", np.int64(5)) or ps),
]


@pytest.mark.parametrize("what, refused, make", IN_MEMORY, ids=[c[0] for c in IN_MEMORY])
def test_save_refuses_in_one_line_what_load_would_refuse_and_writes_nothing(tmp_path, good, what, refused, make):
    """A set whose file load would refuse is refused by save before the file is created, naming the path, the
    field and how to form a valid set; every file save writes loads back with its values."""
    ps = make(PointSet.load(good))
    path = tmp_path / "out.h5"
    if refused:
        with pytest.raises(ValueError) as exc:
            ps.save(path)
        msg = str(exc.value)
        assert str(path) in msg and "which PointSet.load refuses; nothing written" in msg and "\n" not in msg
        assert list(tmp_path.iterdir()) == []
        return
    ps.save(path)
    back = PointSet.load(path)
    for name in ("points", "weights", "omega2", "g_fs", "chart"):
        np.testing.assert_array_equal(getattr(back, name), np.asarray(getattr(ps, name)))
        assert getattr(back, name).dtype in (np.complex128, np.float64, np.int64)  # an int8 chart is read as int64
    assert back.seed == ps.seed


#: (name, value) of attributes save writes itself, each given in attrs: what load reads otherwise (another valid
#: manifold, a valid seed or count) as well as what it refuses
RESERVED_GIVEN = [("manifold", Hypersurface.dwork(3, 0.5).definition_json()), ("manifold", "{}"), ("seed", "99"),
                  ("seed", "{"), ("n_dropped", 5), ("conventions", "lies"), ("hpcflow_version", "0.0"),
                  ("kind", "other")]


@pytest.mark.parametrize("where", ["attrs=", "PointSet.attrs"])
@pytest.mark.parametrize("key, value", RESERVED_GIVEN, ids=[f"{k}-{i}" for i, (k, _) in enumerate(RESERVED_GIVEN)])
def test_save_refuses_an_attribute_it_writes_itself_in_one_line_naming_it(tmp_path, good, where, key, value):
    """attrs={'manifold': another definition} wrote a file that load refused (points off X), {'seed': '99'},
    {'n_dropped': 5} and {'conventions': 'lies'} a file that said another seed, count or conventions than the set's."""
    ps = PointSet.load(good)
    if where == "attrs=":
        call = lambda: ps.save(tmp_path / "x.h5", attrs={"note": "kept", key: value})  # noqa: E731
    else:
        ps.attrs[key] = value
        call = lambda: ps.save(tmp_path / "x.h5")  # noqa: E731
    with pytest.raises(ValueError) as exc:
        call()
    msg = str(exc.value)
    assert "\n" not in msg and f"the name {key!r}" in msg and "nothing written" in msg, msg
    assert list(tmp_path.iterdir()) == []


def test_the_reserved_names_are_the_attributes_save_writes(tmp_path, good):
    """docs/outputs.md's root attributes of a PointSet file: save writes them and a given one beside them."""
    written = ("kind", "manifold", "seed", "n_dropped", "conventions", "hpcflow_version")
    subset = ("drawn_n", "drawn_rows")  # written for a subset of a draw only
    restricted = ("sampled_chart",)  # written for a draw kept to one chart only
    counts = ("intersections", "other_charts")  # the sampler's counts of a whole draw (the second: of one chart)
    assert sorted(RESERVED) == sorted(written + subset + restricted + counts)
    ps = PointSet.load(good)
    ps.save(tmp_path / "x.h5", attrs={"note": "kept"})
    with h5py.File(tmp_path / "x.h5") as f:
        assert sorted(f.attrs) == sorted(("note", *written, "intersections")) and f.attrs["note"] == "kept"
    ps.intersections = None  # (a set not from the sampler)
    ps.save(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        assert sorted(f.attrs) == sorted(written)
    ps[1:].save(tmp_path / "y.h5")
    with h5py.File(tmp_path / "y.h5") as f:
        assert sorted(f.attrs) == sorted((*written, *subset))
        assert f.attrs["manifold"] == ps.manifold.definition_json() and f.attrs["n_dropped"] == ps.n_dropped
    one = ps[np.all(ps.chart == ps.chart[0], axis=1)]
    one.sampled_chart = tuple(int(i) for i in ps.chart[0])
    one.save(tmp_path / "z.h5")
    with h5py.File(tmp_path / "z.h5") as f:
        assert sorted(f.attrs) == sorted((*written, *subset, *restricted))


def test_a_malformed_index_result_cannot_reach_a_file(tmp_path, good):
    """The audit's sets (ps[True], ps[None], ps[np.array(3)]) are refused or well formed; none is written malformed."""
    ps = PointSet.load(good)
    with pytest.raises(ValueError, match="dataset 'points' has shape"):
        _set(ps, **{k: getattr(ps, k)[None] for k in ("points", "weights", "omega2", "g_fs", "chart")}).save(
            tmp_path / "x.h5")
    one = ps[np.array(3)]
    one.save(tmp_path / "one.h5")
    back = PointSet.load(tmp_path / "one.h5")
    assert len(back) == 1 and np.array_equal(back.points, ps.points[3:4]) and back.sigma() == 0.0


def test_a_numpy_integer_seed_is_saved_as_the_number_it_holds(tmp_path):
    """sample(seed=np.uint64(3)) kept the NumPy integer, which json.dumps refused when the set was saved."""
    ps = Hypersurface.fermat(3).sample(20, seed=np.uint64(3))
    assert type(ps.seed) is int
    ps.save(tmp_path / "s.h5")
    assert PointSet.load(tmp_path / "s.h5").seed == 3


def test_a_json_seed_is_written_with_sorted_keys(tmp_path):
    """JSON root attributes are written with sorted keys (docs/outputs.md); a dict seed kept the order it was given
    in, nested dicts too. Read back it is the same seed."""
    ps = Hypersurface.fermat(3).sample(10, seed=0)
    ps.seed = {"run": 2, "entropy": [7, {"spawn": 1, "key": 3}], 5: "x"}
    ps.save(tmp_path / "x.h5")
    with h5py.File(tmp_path / "x.h5") as f:
        text = f.attrs["seed"]

    def orders(pairs):
        keys.append([k for k, _ in pairs])
        return dict(pairs)

    keys = []
    json.loads(text, object_pairs_hook=orders)
    assert len(keys) == 2 and keys == [sorted(k) for k in keys]  # the nested dict and the seed
    assert text == json.dumps(json.loads(text), sort_keys=True)
    assert PointSet.load(tmp_path / "x.h5").seed == json.loads(json.dumps(ps.seed))


def test_a_subset_records_which_rows_of_which_draw_it_holds(tmp_path):
    """X.sample(50, seed=4)[10:20] is rows 10-19 of the 50-point draw of seed 4: its file says so (@drawn_n,
    @drawn_rows), loads with the same provenance, and the rows it names are the draw's rows."""
    X = Hypersurface.fermat(3)
    whole = X.sample(50, seed=4, threads=1)
    part = whole[10:20]
    part.save(tmp_path / "part.h5")
    with h5py.File(tmp_path / "part.h5", "r") as f:
        assert json.loads(f.attrs["seed"]) == 4 and int(f.attrs["drawn_n"]) == 50
        runs = json.loads(f.attrs["drawn_rows"])
    assert runs == [[10, 20]]
    back = PointSet.load(tmp_path / "part.h5")
    assert back.drawn[0] == 50 and back.drawn[1].tolist() == list(range(10, 20))
    np.testing.assert_array_equal(back.points, whole.points[back.drawn[1]])
    # a subset of a subset maps through; a mask, a reordering; the whole draw back in order is no subset
    rows = back[[7, 2, 2]].drawn[1]
    assert rows.tolist() == [17, 12, 12]
    mask = whole.weights > np.median(whole.weights)
    assert whole[mask].drawn[1].tolist() == np.flatnonzero(mask).tolist()
    assert whole[::-1].drawn[1].tolist() == list(range(49, -1, -1))
    assert PointSet.concatenate([whole[:20], whole[20:]]).drawn is None and whole[:].drawn is None
    whole[::-1].save(tmp_path / "rev.h5")
    np.testing.assert_array_equal(PointSet.load(tmp_path / "rev.h5").points, whole.points[::-1])


def test_concatenated_parts_of_one_draw_name_its_rows_and_of_different_draws_no_seed(tmp_path):
    """Parts of one draw concatenate to its rows (seed and @drawn_rows kept, the rows those of the draw drawn again);
    parts of draws of another seed, size or sampled chart are no draw: seed None, no @drawn_n, and the file loads."""
    X = Hypersurface.fermat(3)
    a, b = X.sample(30, seed=0, threads=1), X.sample(20, seed=1, threads=1)
    one = PointSet.concatenate([a[20:], a[:5]])
    one.save(tmp_path / "one.h5")
    back = PointSet.load(tmp_path / "one.h5")
    assert back.seed == 0 and back.drawn[0] == 30
    np.testing.assert_array_equal(back.points, X.sample(30, seed=0, threads=1).points[back.drawn[1]])
    assert back.drawn[1].tolist() == list(range(20, 30)) + list(range(5))
    others = {"seeds_subset": [a[:5], b], "seeds_whole": [a, b],
              "sizes": [X.sample(20, seed=0, threads=1)[:10], a],  # one seed, draws of 20 and 30 points
              "charts": [X.sample(30, seed=0, chart=(0, 1), threads=1)[:4], a[4:]]}
    for name, parts in others.items():
        cat = PointSet.concatenate(parts)
        assert cat.seed is None and cat.drawn is None and cat.sampled_chart is None, name
        cat.save(tmp_path / f"{name}.h5")
        with h5py.File(tmp_path / f"{name}.h5", "r") as f:
            assert json.loads(f.attrs["seed"]) is None and "drawn_n" not in f.attrs, name
        loaded = PointSet.load(tmp_path / f"{name}.h5")
        assert loaded.seed is None and len(loaded) == sum(len(p) for p in parts), name
        np.testing.assert_array_equal(loaded.points, np.concatenate([p.points for p in parts]))
    # a draw restricted to one chart stays so where every part is of it
    c = X.sample(30, seed=2, chart=(1, 0), threads=1)
    assert PointSet.concatenate([c[3:], c[:3]]).sampled_chart == (1, 0)


def test_a_whole_draw_and_an_old_file_carry_no_subset_attributes(tmp_path, good):
    X = Hypersurface.fermat(3)
    X.sample(30, seed=1, threads=1).save(tmp_path / "whole.h5")
    with h5py.File(tmp_path / "whole.h5", "r") as f:
        assert "drawn_n" not in f.attrs and "drawn_rows" not in f.attrs
    assert PointSet.load(good).drawn is None  # files written before subsets were marked load as whole draws


def test_a_truncated_hdf5_file_is_said_to_be_truncated_not_of_another_format(tmp_path, good):
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(InputFileError, match="truncated or damaged") as exc:
        PointSet.load(cut)
    assert "not an HDF5 file" not in str(exc.value)
    other = tmp_path / "other.h5"
    other.write_bytes(b"x" * (len(data) // 2))  # no HDF5 signature anywhere: another kind of file
    with pytest.raises(InputFileError, match="is not an HDF5 file"):
        PointSet.load(other)


def test_a_point_moved_off_x_is_named_before_the_data_it_no_longer_matches(tmp_path, good):
    """A point moved by 1e-9 of its norm in a coordinate of small |dp/dz_j| stays within ON_X_TOL and the roundoff
    test, but its g_FS (formed for the point as sampled) no longer agrees: the point is named, with its residual."""
    from hpcflow.geometry.pointcheck import OFF_X_RESIDUAL

    X = Hypersurface.fermat(3)
    with h5py.File(good, "r") as f:
        z, chart = f["points"][()], f["chart"][()]
    named = 0
    for row in range(len(z)):
        for j in (k for k in range(5) if k != chart[row, 0]):
            moved = z.copy()
            moved[row, j] += 1e-9 * np.linalg.norm(z[row])
            if X.residual(moved[row:row + 1])[0] <= 100 * OFF_X_RESIDUAL:
                continue
            path = tmp_path / f"m{row}_{j}.h5"
            shutil.copy(good, path)
            with h5py.File(path, "r+") as f:
                f["points"][...] = moved
            with pytest.raises(InputFileError) as exc:
                PointSet.load(path)
            assert "dataset 'points'" in str(exc.value) and f"row {row}" in str(exc.value), exc.value
            named += 1
    assert named >= 20  # moves of every kind: caught by the roundoff test and only by their data's disagreement


def test_n_dropped_that_is_text_must_be_an_integer(tmp_path, good):
    path = tmp_path / "n.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        f.attrs["n_dropped"] = "many"
    with pytest.raises(InputFileError, match="'n_dropped' = 'many' must be an integer") as exc:
        PointSet.load(path)
    assert "JSON" not in str(exc.value)


def test_a_point_set_prints_as_one_line_of_its_shapes_and_seed():
    """print(ps) of a 50-point set was its every array in full (~1000 lines); it is one line naming the manifold, N,
    each field's shape and what reproduces the draw, whatever N."""
    from hpcflow.geometry import Hypersurface

    for n in (50, 2000):
        ps = Hypersurface.fermat(3).sample(n, seed=2)
        said = repr(ps)
        assert "\n" not in said and len(said) < 300, said
        assert said.startswith("PointSet(fermat(dim=3), ") and f"N={len(ps)}" in said and "seed=2" in said, said
        assert f"g_fs({len(ps)}, 3, 3)" in said and str(ps) == said
    assert "N=3" in repr(ps[:3])
