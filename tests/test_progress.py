"""Progress reporting: tqdm bar on a terminal, one line per step in logs, silence when off."""

import io

import numpy as np
import pytest

from fastmlp import MLP, fit, lr_sweep, cross_validate, progress


def blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(np.int64)
    X = rng.normal(size=(n, 4)).astype(np.float32) + 1.5 * y[:, None]
    return X, y


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_resolve_mode(monkeypatch):
    monkeypatch.delenv("FASTMLP_PROGRESS", raising=False)
    assert progress.resolve_mode(False) == "off"
    assert progress.resolve_mode(0) == "off"
    assert progress.resolve_mode(True, file=io.StringIO()) == "lines"     # a log file
    assert progress.resolve_mode(True, file=TTY()) == "bar"               # a terminal
    assert progress.resolve_mode("lines", file=TTY()) == "lines"
    monkeypatch.setenv("FASTMLP_PROGRESS", "bar")
    assert progress.resolve_mode(True, file=io.StringIO()) == "bar"
    monkeypatch.setenv("FASTMLP_PROGRESS", "off")
    assert progress.resolve_mode(True, file=TTY()) == "off"
    with pytest.raises(ValueError, match="progress must be True, False or one of"):
        progress.resolve_mode("loud")


def test_without_tqdm_bar_falls_back_to_lines(monkeypatch):
    monkeypatch.setattr(progress, "have_tqdm", lambda: False)
    f = io.StringIO()
    with progress.progress_bar(3, "work", "item", mode="bar", file=f) as p:
        assert p.mode == "lines"
        p.update(line="first")
        p.update(loss=0.5)
    assert f.getvalue().splitlines() == ["first", "work 2/3  loss 0.5"]


def test_bar_mode_keeps_each_line_and_counts(monkeypatch):
    pytest.importorskip("tqdm")
    f = TTY()
    with progress.progress_bar(2, "fit", "epoch", file=f) as p:
        assert p.mode == "bar"
        p.update(line="epoch 1/2  loss 0.7", samples_s=12345.0)
        p.update(line="epoch 2/2  loss 0.6", samples_s=23456.0)
    text = f.getvalue()
    assert "epoch 1/2  loss 0.7\n" in text and "epoch 2/2  loss 0.6\n" in text
    assert "2/2" in text and "samples/s=23,456" in text   # the bar's count and postfix


def test_off_prints_nothing():
    f = TTY()
    with progress.progress_bar(2, "x", enabled=False, file=f) as p:
        p.update(line="hello")
        p.write("more")
    assert f.getvalue() == "" and p.n == 1


def test_fit_progress_lines_and_quiet(capsys, monkeypatch):
    monkeypatch.delenv("FASTMLP_PROGRESS", raising=False)
    X, y = blobs(100)
    fit(MLP([4, 2, 1], backend="numpy"), X, y, epochs=3)
    err = capsys.readouterr().err.splitlines()
    assert [e.split()[1] for e in err] == ["1/3", "2/3", "3/3"] and "samples/s" in err[2]
    fit(MLP([4, 2, 1], backend="numpy"), X, y, epochs=3, progress=False)
    assert capsys.readouterr().err == ""


def test_fit_bar_mode(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setenv("FASTMLP_PROGRESS", "bar")
    X, y = blobs(100)
    fit(MLP([4, 2, 1], backend="numpy"), X, y, epochs=2)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "samples/s" in err      # the per-epoch records
    assert "fit: 100%" in err and "2/2" in err           # the tqdm bar


def test_sweep_and_cv_progress(capsys, monkeypatch):
    monkeypatch.delenv("FASTMLP_PROGRESS", raising=False)
    X, y = blobs(200)
    lr_sweep(lambda: MLP([4, 3, 1], backend="numpy"), X, y, lrs=[1e-3, 1e-2], iterations=5,
             batch_size=32, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("lr 0.001: final loss")
    cross_validate(lambda: MLP([4, 3, 1], backend="numpy"), X, y, k=3, epochs=1,
                   progress=True)
    err = capsys.readouterr().err.splitlines()
    assert [e.split(":")[0] for e in err] == ["fold 1/3", "fold 2/3", "fold 3/3"]
    cross_validate(lambda: MLP([4, 3, 1], backend="numpy"), X, y, k=3, epochs=1)
    lr_sweep(lambda: MLP([4, 3, 1], backend="numpy"), X, y, lrs=[1e-3], iterations=5)
    assert capsys.readouterr().err == ""


def test_row_progress_in_a_log_prints_a_line_every_ten_seconds(capsys, monkeypatch):
    """stderr not a terminal (pytest's capture): a plain line when LOG_EVERY seconds have
    passed since the last one, none in between; FASTMLP_PROGRESS=lines: one per chunk."""
    from fastmlp.data.stream import RowProgress
    monkeypatch.delenv("FASTMLP_PROGRESS", raising=False)
    times = iter([0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 21.0, 22.5])   # the start, then each update
    bar = RowProgress(7000, "predict", 7, True, clock=lambda: next(times))
    for _ in range(7):
        bar.update(1000)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == ["predict 4/7 chunks  4,000 rows  333 rows/s  ETA 9.0 s",
                                "predict 7/7 chunks  7,000 rows  311 rows/s  ETA 0.0 s"]
    monkeypatch.setenv("FASTMLP_PROGRESS", "lines")
    times = iter([0.0, 1.0, 2.0])
    bar = RowProgress(2000, "scan", 2, True, clock=lambda: next(times))
    bar.update(1000)
    bar.update(1000)
    assert len(capsys.readouterr().err.splitlines()) == 2
    monkeypatch.delenv("FASTMLP_PROGRESS")
    bar = RowProgress(2000, "scan", 2, False, clock=lambda: 100.0)
    bar.update(2000)
    assert capsys.readouterr().err == ""
