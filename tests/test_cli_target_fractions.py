"""``fastmlp train --min-completeness 1.0`` and ``--max-contamination 0`` are accepted, as
metrics.threshold_at_completeness / threshold_at_contamination accept them (they were refused
with "expected a fraction between 0 and 1, got '1.0'"); a value outside [0, 1] is refused
with the exact range, and an unreachable target names its flag."""

import numpy as np
import pytest

import fastmlp
from fastmlp import metrics
from fastmlp.cli import main


def _catalog(tmp_path, overlap):
    """Two classes apart in a, label 1 the quasars; with ``overlap`` a is the same in every
    row (every score tied: no cut selects only quasars)."""
    rng = np.random.default_rng(3)
    n = 600
    y = (np.arange(n) % 4 == 0).astype(np.int64)
    a = np.zeros(n) if overlap else np.where(y == 1, 3.0, -3.0) + rng.normal(size=n) * 0.3
    t = np.zeros(n, dtype=[("a", "f8"), ("b", "f8"), ("label", "i8")])
    t["a"], t["b"], t["label"] = a, 0.0 if overlap else rng.normal(size=n), y
    path = tmp_path / "cat.npy"
    np.save(path, t)
    return path


def _train(capsys, tmp_path, cat, *extra):
    code = main(["train", "--catalog", str(cat), "--features", "a,b", "--label", "label",
                 "--class-names", "star,quasar", "--positive", "quasar", "--epochs", "20",
                 "--batch-size", "32", "--lr", "0.01",
                 "--hidden", "4", "--quiet", "--out", str(tmp_path / "m.npz"), *extra])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("flag, value", [("--min-completeness", "1.0"),
                                         ("--max-contamination", "0")])
def test_the_ends_the_metrics_accept_are_accepted(tmp_path, capsys, flag, value):
    # the metrics take them
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])
    assert metrics.threshold_at_completeness(y, s, 1, 1.0).completeness == 1.0
    assert metrics.threshold_at_contamination(y, s, 1, 0.0).contamination == 0.0
    code, out, err = _train(capsys, tmp_path, _catalog(tmp_path, overlap=False), flag, value)
    assert code == 0, err
    assert "cut chosen on the validation set" in out
    m = fastmlp.load(tmp_path / "m.npz")
    assert m.threshold is not None
    if flag == "--min-completeness":
        assert "completeness 1.0000" in out
    else:
        assert "contamination 0.0000" in out


@pytest.mark.parametrize("flag", ["--min-completeness", "--max-contamination"])
@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_outside_the_range_is_refused_with_the_range(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit):
        _train(capsys, tmp_path, tmp_path / "absent.npy", flag, value)
    err = capsys.readouterr().err
    assert f"{flag}: expected a fraction in [0, 1], got '{value}'" in err


def test_unreachable_contamination_names_the_flag(tmp_path, capsys):
    code, out, err = _train(capsys, tmp_path, _catalog(tmp_path, overlap=True),
                            "--max-contamination", "0")
    assert code != 0
    assert "--max-contamination 0: no cut on the score reaches" in err


def test_open_fractions_say_their_exact_range(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _train(capsys, tmp_path, tmp_path / "absent.npy", "--test-fraction", "1")
    err = capsys.readouterr().err
    assert "--test-fraction: expected a fraction strictly between 0 and 1 (0 < F < 1), got " \
        "'1'" in err


@pytest.mark.parametrize("flag", ["--max-contamination", "--min-completeness"])
def test_minus_zero_is_read_as_zero(flag):
    """'-0' is 0 (it was kept as -0.0 and printed back as '-0')."""
    from fastmlp.cli.args import build_parser
    value = getattr(build_parser().parse_args(["train", flag, "-0"]), flag[2:].replace("-", "_"))
    assert value == 0.0 and str(value) == "0.0"
