"""fit_stream as a user probe found it: a checkpoint over the catalog it reads, a resume
under other class weights (or another where filter, other fill values), NaN rows dropped
without a word from a path, and the stream's positive class lost from the model."""

import os

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, fit_stream
from fastmlp.data import CatalogStream

from conftest import data_file

F = "u-g,g-r,r-i,i-z"
KW = dict(features=F, label="label", epochs=1, batch_size=64, progress=False,
          backend="numpy")


def _synthetic(n, rng):
    """A catalog shaped like the DR6 colours file, label 0 = quasar; 'flag' splits it in
    two halves with the same class counts."""
    i = np.arange(n)
    a = np.zeros(n, dtype=[("u-g", "f4"), ("g-r", "f4"), ("r-i", "f4"), ("i-z", "f4"),
                           ("label", "i4"), ("flag", "i4")])
    a["label"] = (i // 2) % 2
    a["flag"] = i % 2
    for c in ("u-g", "g-r", "r-i", "i-z"):
        a[c] = rng.normal(0.3, 0.3, n) + 0.8 * a["label"]
    return a


@pytest.fixture(params=["dr6", "synthetic"])
def catalog(request, tmp_path):
    """(path, structured array) of a 3000-row catalog: a subset of the DR6 colours file
    (skipped when it is absent) or a synthetic one."""
    rng = np.random.default_rng(7)
    if request.param == "dr6":
        full = np.load(data_file("sdssdr6_colors_class.200000.npy"), mmap_mode="r")
        a = np.array(full[np.sort(rng.choice(full.shape[0], 3000, replace=False))])
    else:
        a = _synthetic(3000, rng)
    p = tmp_path / "cat.npy"
    np.save(p, a)
    return p, a


# -- 1. a checkpoint over the streamed catalog ----------------------------------------------
@pytest.mark.parametrize("how", ["path", "symlink", "stream"])
def test_checkpoint_that_is_the_catalog_is_refused_before_any_work(catalog, tmp_path, how):
    p, _ = catalog
    before = p.read_bytes()
    ckpt = p
    if how == "symlink":
        ckpt = tmp_path / "link.npy"
        os.symlink(p, ckpt)
    source = CatalogStream(p, features=F, label="label") if how == "stream" else p
    kw = {k: v for k, v in KW.items() if how != "stream" or k not in ("features", "label")}
    m = MLP([4, 8, 1], seed=0)
    w0 = m.params.copy()
    with pytest.raises(ValueError, match=r"checkpoint .* is the same file as the input"):
        fit_stream(m, source, checkpoint=ckpt, **kw)
    assert p.read_bytes() == before                     # the catalog is intact
    np.testing.assert_array_equal(m.params, w0)         # nothing trained
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(
        ["cat.npy"] + (["link.npy"] if how == "symlink" else []))


# -- 2. the run identity: class weights, where, fill ----------------------------------------
def test_resume_with_other_class_weights_is_refused_naming_class_weight(catalog, tmp_path):
    p, _ = catalog
    ck = tmp_path / "st.ckpt"
    fit_stream(MLP([4, 8, 1], seed=0), p, checkpoint=ck, **KW)
    with pytest.raises(ValueError, match=r"different run \(class_weight: checkpoint None"):
        fit_stream(MLP([4, 8, 1], seed=0), p, checkpoint=ck, resume=True,
                   class_weight="balanced", **dict(KW, epochs=3))
    # the same weights resume (and a dict giving the balanced values is the same run)
    fit_stream(MLP([4, 8, 1], seed=0), p, checkpoint=ck, class_weight={0: 1.0, 1: 2.0},
               **KW)
    m = MLP([4, 8, 1], seed=0)
    h = fit_stream(m, p, checkpoint=ck, resume=True, class_weight={0: 1.0, 1: 2.0},
                   **dict(KW, epochs=2))
    assert len(h.loss) == 2
    with pytest.raises(ValueError, match="class_weight: checkpoint"):
        fit_stream(MLP([4, 8, 1], seed=0), p, checkpoint=ck, resume=True,
                   class_weight={0: 2.0, 1: 1.0}, **dict(KW, epochs=3))


def test_resume_under_another_where_filter_is_refused_naming_where(tmp_path):
    p = tmp_path / "flags.npy"
    np.save(p, _synthetic(2000, np.random.default_rng(3)))
    ck = tmp_path / "st.ckpt"
    fit_stream(MLP([4, 8, 1], seed=0), p, checkpoint=ck, where="flag == 0", **KW)
    # the other half: as many rows of each class, so only the filter tells them apart
    with pytest.raises(ValueError, match=r"different run \(where: checkpoint 'flag == 0'"):
        fit_stream(MLP([4, 8, 1], seed=0), p, checkpoint=ck, resume=True, where="flag == 1",
                   **dict(KW, epochs=2))


def test_resume_under_other_fill_values_is_refused_naming_fill(tmp_path):
    a = _synthetic(2000, np.random.default_rng(4))
    a["g-r"][::10] = np.nan
    p = tmp_path / "holes.npy"
    np.save(p, a)
    ck = tmp_path / "st.ckpt"
    fit_stream(MLP([4, 8, 1], seed=0), p, checkpoint=ck, fill={"g-r": 0.3}, **KW)
    with pytest.raises(ValueError, match=r"different run \(fill: checkpoint \{'g-r': 0.3"):
        fit_stream(MLP([4, 8, 1], seed=0), p, checkpoint=ck, resume=True,
                   fill={"g-r": 0.5}, **dict(KW, epochs=2))


# -- 3. missing values from a path: refused by default, as load_catalog ---------------------
def test_path_with_a_nan_row_is_refused_naming_the_row(catalog, tmp_path):
    _, a = catalog
    a = a.copy()
    a["r-i"][1234] = np.nan
    p = tmp_path / "nan.npy"
    np.save(p, a)
    with pytest.raises(ValueError, match=r"data row 1235\).*'r-i': 1.*missing='drop'"):
        fit_stream(MLP([4, 8, 1], seed=0), p, **KW)
    with pytest.raises(ValueError, match="'r-i': 1"):      # as load_catalog refuses it
        fastmlp.load_catalog(p, features=F, label="label")
    h = fit_stream(MLP([4, 8, 1], seed=0), p, missing="drop", **KW)
    assert h.stream.n_valid == len(a) - 1 and h.stream.n_dropped == 1


# -- 4. the stream's positive class into the model's contract --------------------------------
def test_stream_positive_class_goes_into_the_model(catalog):
    p, _ = catalog
    s = CatalogStream(p, features=F, label="label", positive=0, class_names=["QSO", "STAR"])
    s.scan()
    m = MLP([4, 16, 1], seed=0)
    fit_stream(m, s, epochs=1, progress=False, backend="numpy")
    assert s.positive == 0 and m.positive == 0
    assert list(m.class_names) == ["QSO", "STAR"]
    # from a path: the quasar class is the positive class, as train --stream finds it
    m = MLP([4, 16, 1], seed=0)
    fit_stream(m, p, class_names="STAR,QSO", **{k: v for k, v in KW.items()})
    assert m.positive == 1


def test_model_naming_another_positive_class_is_refused(catalog):
    p, _ = catalog
    s = CatalogStream(p, features=F, label="label", positive="QSO", class_names="QSO,STAR")
    m = MLP([4, 8, 1], seed=0, positive=1)
    w0 = m.params.copy()
    with pytest.raises(ValueError, match=r"positive class 0 \('QSO'\) differs from the "
                                         r"model's positive 1"):
        fit_stream(m, s, epochs=1, progress=False, backend="numpy")
    np.testing.assert_array_equal(m.params, w0)
    assert m.positive == 1
