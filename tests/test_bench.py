"""Smoke tests of `fastmlp bench` (fastmlp/bench.py) in its tiny mode: seconds, not minutes.

Timing is never asserted; what is checked is that the comparison runs every available
backend and installed peer, checks the losses, and writes complete, parseable results.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

import fastmlp
from fastmlp import bench

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
AVAILABLE = [b for b, (ok, _) in fastmlp.available_backends().items() if ok]


def _load(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # one thread: the smoke test stays quick even on a busy machine (2 is the default)
    rc = bench.main(["--tiny", "--out", str(out), "--threads", "1"])
    assert rc == 0
    return out, _load(out / "latest.json")


def test_tiny_run_writes_json_markdown_and_chart(tiny_run):
    out, res = tiny_run
    names = sorted(os.listdir(out))
    stamped = [n for n in names if n.startswith("bench-tiny-") and n.endswith(".json")]
    assert len(stamped) == 1
    assert _load(out / stamped[0]) == res          # latest.json is the same result
    assert not [n for n in names if n.startswith(".tmp-")]   # atomic writes leave no temp
    assert "latest.md" in names
    md = (out / "latest.md").read_text()
    assert "## Targets" in md and "## Training throughput" in md
    if HAVE_MPL:
        png = (out / "latest.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    for key in ("schema", "meta", "versions", "machine", "training", "optimizers",
                "inference", "targets", "notes"):
        assert key in res, key
    assert res["meta"]["mode"] == "tiny"
    assert res["meta"]["threads"] == 1
    assert bench._parser().parse_args([]).threads == 2
    assert res["meta"]["backends"] == AVAILABLE


def test_machine_limits_measured(tiny_run):
    m = tiny_run[1]["machine"]
    assert m["sgemm_peak_gflops"] > 0
    assert {r["kind"] for r in m["sgemm"]} == {"square", "mlp"}
    bw = m["bandwidth"]
    # every streaming kernel was timed; the figure used is the highest median of all of
    # them, whichever kernel that is on the machine at hand (it differs between CPUs)
    assert set(bw["kernels"]) == {"copy", "triad", "update", "update3"}
    for k in bw["kernels"]:
        assert bw[k]["gbs_best"] >= bw[k]["gbs_median"] > 0
    assert bw["gbs_kernel"] in bw["kernels"]
    assert bw["gbs"] == bw[bw["gbs_kernel"]]["gbs_median"]
    assert bw["gbs"] == max(bw[k]["gbs_median"] for k in bw["kernels"])
    assert any(d["user_api"] == "blas" for d in m["threadpools"])


def test_training_rows_and_loss_checks(tiny_run):
    tr = tiny_run[1]["training"]
    systems = {r["system"] for r in tr["rows"]}
    expected = {f"fastmlp[{b}]" for b in AVAILABLE}
    if HAVE_TORCH:
        expected |= {"torch eager", "torch eager fused"}
    if HAVE_SKLEARN:
        expected.add("sklearn")
    assert expected <= systems
    have_fit = importlib.util.find_spec("fastmlp.train") is not None
    for r in tr["rows"]:
        assert "error" not in r, r
        if r["system"].startswith("fastmlp[") and have_fit:
            assert r["method"] == "fastmlp.fit"
            assert r["samples_per_s_train_epoch_only"] >= r["samples_per_s"] * 0.99
        assert r["samples_per_s"] > 0 and r["epochs_timed"] >= 2
        assert r["gflops"] == pytest.approx(6 * r["n_params"] * r["samples_per_s"] / 1e9)
        assert r["frac_sgemm_peak"] > 0
        if HAVE_TORCH:
            assert r["ratio_vs_torch_eager"] > 0
    (check,) = tr["checks"]
    # every fastmlp backend and torch ran the same first steps from the same weights
    assert set(check["losses"]) >= {f"fastmlp[{b}]" for b in AVAILABLE}
    if HAVE_TORCH:
        assert {"torch eager", "torch eager fused"} <= set(check["losses"])
        assert check["reference"] == "torch eager"
    assert all(len(v) == check["steps"] for v in check["losses"].values())
    assert check["ok"], check
    assert max(check["rel_diff"].values()) <= bench.LOSS_CHECK_RTOL
    if HAVE_SKLEARN:
        assert check["sklearn_forward_ok"]


def test_optimizer_rows_cover_every_optimizer(tiny_run):
    op = tiny_run[1]["optimizers"]
    labels = {c[0] for c in bench.OPTIMIZER_CASES}
    assert labels == {"sgd", "sgd_momentum", "adagrad", "rmsprop", "adam", "adamw"}
    for b in AVAILABLE:
        got = {r["optimizer"] for r in op["rows"] if r["system"] == f"fastmlp[{b}]"
               and r.get("gbs", 0) > 0}
        assert got == labels, b
    # every system's first updates were checked against torch (or the reference)
    assert op["check_reference"] == ("torch default" if HAVE_TORCH else "fastmlp[numpy]")
    for r in op["rows"]:
        if r.get("gbs"):
            assert r["check_ok"] and r["check_max_abs_diff"] <= 1e-5, r
    adam = next(r for r in op["rows"] if r["optimizer"] == "adam")
    assert adam["bytes_per_param"] == 28
    if HAVE_TORCH:
        fused = {r["optimizer"] for r in op["rows"] if r["system"] == "torch fused"
                 and r.get("gbs")}
        assert {"adam", "adamw", "sgd"} <= fused


def test_inference_rows_agree(tiny_run):
    inf = tiny_run[1]["inference"]
    for r in inf["rows"]:
        assert r["check_ok"], r
        assert r["objects_per_s"] > 0
    assert {f"fastmlp[{b}]" for b in AVAILABLE} <= {r["system"] for r in inf["rows"]}


def test_targets_table(tiny_run):
    targets = tiny_run[1]["targets"]
    assert len(targets) == 6
    assert all(t["status"] in ("met", "NOT met", "n/a", "unreliable") or
               t["status"].startswith("met with backend=") for t in targets)
    # the tiny run measures none of the target training configurations
    assert [t["status"] for t in targets[:4]] == ["n/a"] * 4


def _fake_results(check_ok):
    rows = [{"config": "5-32-32-1@256", "system": s, "samples_per_s": v, "gflops": 1.0,
             "frac_sgemm_peak": 0.5}
            for s, v in (("fastmlp[numpy]", 2e6), ("torch eager", 1e5))]
    return {"training": {"rows": rows,
                         "checks": [{"config": "5-32-32-1@256", "ok": check_ok}]}}


def test_target_met_only_when_losses_agree():
    res = _fake_results(True)
    t = bench.evaluate_targets(res)[0]
    assert t["status"] == "met" and t["value"] == pytest.approx(20.0)
    t = bench.evaluate_targets(_fake_results(False))[0]
    assert t["status"] == "NOT met" and "loss check FAILED" in t["measured"]
    res = _fake_results(True)
    res["training"]["rows"][0]["samples_per_s"] = 5e5   # 5x < 10x
    assert bench.evaluate_targets(res)[0]["status"] == "NOT met"


def test_target_status_is_the_default_backends():
    def res(c, numba):
        r = _fake_results(True)
        r["meta"] = {"default_backend": "c"}
        r["training"]["rows"] = [
            {"config": "5-32-32-1@256", "system": s, "samples_per_s": v, "frac_sgemm_peak": 0.5}
            for s, v in (("fastmlp[c]", c), ("fastmlp[numba]", numba), ("torch eager", 1e5))]
        return bench.evaluate_targets(r)[0]
    t = res(2e6, 3e6)
    assert t["status"] == "met" and "default backend" in t["measured"]
    assert "fastmlp[numba]" in t["measured"]     # the faster one is shown too
    t = res(5e5, 2e6)
    assert t["status"] == "met with backend=numba only"
    assert t["value"] == pytest.approx(5.0)
    assert res(5e5, 6e5)["status"] == "NOT met"


def test_fraction_well_above_one_is_unreliable_not_met():
    rows = [{"config": "5-512-512-1@4096", "system": s, "samples_per_s": v,
             "frac_sgemm_peak": f} for s, v, f in (("fastmlp[c]", 2e5, 2.5),
                                                  ("torch eager", 1e5, 1.2))]
    res = {"meta": {"default_backend": "c"}, "training": {"rows": rows, "checks": []}}
    t = bench.evaluate_targets(res)[3]
    assert t["target"].startswith("training 5-512-512-1@4096")
    assert t["status"] == "unreliable" and "quiet machine" in t["measured"]
    rows[0]["frac_sgemm_peak"] = 0.7
    assert bench.evaluate_targets(res)[3]["status"] == "met"
    rows[0]["frac_sgemm_peak"] = 1.05  # within the slack: at the limit, not a bad limit
    assert bench.evaluate_targets(res)[3]["status"] == "met"


def test_machine_limits_remeasured_and_highest_kept(tiny_run):
    m = tiny_run[1]["machine"]
    assert "sgemm_end" in m and "bandwidth_end" in m
    assert m["sgemm_peak_gflops"] == max(m["sgemm_peak_gflops_start"],
                                         max(r["gflops_best"] for r in m["sgemm_end"]))
    assert m["bandwidth_gbs"] == max(m["bandwidth_gbs_start"], m["bandwidth_end"]["gbs"])
    op = tiny_run[1]["optimizers"]
    assert op["bandwidth_gbs"] == m["bandwidth_gbs"]
    for r in op["rows"]:
        if r.get("gbs"):
            assert r["frac_bandwidth"] == pytest.approx(r["gbs"] / m["bandwidth_gbs"])


def test_rel_diff():
    assert bench._rel_diff([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert bench._rel_diff([1.0, 2.2], [1.0, 2.0]) == pytest.approx(0.1)
    assert bench._rel_diff([1.0], [1.0, 2.0]) == float("inf")


def test_atomic_write_replaces(tmp_path):
    p = tmp_path / "sub" / "x.json"
    bench._atomic_write_text(str(p), "one")
    bench._atomic_write_text(str(p), "two")
    assert p.read_text() == "two"
    assert os.listdir(p.parent) == ["x.json"]


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(SystemExit, match="--backends"):
        bench.main(["--tiny", "--out", str(tmp_path), "--backends", "nope"])
    with pytest.raises(SystemExit, match="--sections"):
        bench.main(["--tiny", "--out", str(tmp_path), "--sections", "training,bogus"])


def test_without_peers_targets_are_not_applicable(tmp_path):
    rc = bench.main(["--tiny", "--out", str(tmp_path), "--no-torch", "--no-sklearn",
                     "--sections", "training,inference", "--backends", "numpy",
                     "--no-chart", "--no-latest"])
    assert rc == 0
    (path,) = [p for p in tmp_path.iterdir() if p.suffix == ".json"]
    res = _load(path)
    assert {r["system"] for r in res["training"]["rows"]} == {"fastmlp[numpy]"}
    assert res["training"]["checks"][0]["reference"] == "fastmlp[numpy]"
    assert "machine" not in res and "optimizers" not in res
    assert res["targets"][-1]["status"] == "n/a"
    assert any("PyTorch skipped" in n for n in res["notes"])


def test_package_import_does_not_pull_in_peers():
    code = ("import sys, fastmlp, fastmlp.bench; "
            "bad = [m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
