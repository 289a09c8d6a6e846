"""Inference throughput: objects/s through predict_proba on a large catalog, fastmlp on every
backend vs PyTorch eager under no_grad and scikit-learn, probabilities checked first."""

import numpy as np

from .common import PROBA_CHECK_ATOL, arch_name, log, median, time_call
from .data import make_data
from .peers import SklearnTrainer, torch_model

CHECK_ROWS = 10_000
TORCH_CHUNK = 65536


def _row(system, rows_used, times, check, extra=None):
    t = median(times)
    row = {"system": system, "rows": rows_used, "s": t, "objects_per_s": rows_used / t,
           "max_abs_diff_vs_fastmlp_numpy": check,
           "check_ok": check is not None and check <= PROBA_CHECK_ATOL, **(extra or {})}
    log(f"[infer] {system:<24} {row['objects_per_s']:>14,.0f} objects/s "
        f"({rows_used:,} rows, check {'OK' if row['check_ok'] else 'FAILED'})")
    return row


def _fastmlp_rows(model, X, p_ref, backend_names, n_slow, reps, notes):
    rows = []
    for b in backend_names:
        try:
            model.backend = b
            Xb = X[:n_slow] if b == "numpy" else X
            chk = float(np.max(np.abs(model.predict_proba(X[:CHECK_ROWS])[:, 1] - p_ref)))
            times = time_call(lambda: model.predict_proba(Xb), reps)
            rows.append(_row(f"fastmlp[{b}]", Xb.shape[0], times, chk,
                             {"api": "MLP.predict_proba"}))
        except Exception as exc:
            notes.append(f"inference fastmlp[{b}] failed: {type(exc).__name__}: {exc}")
    model.backend = None
    return rows


def _torch_row(torch, sizes, params, X, p_ref, reps):
    """torch gets the better of whole-array and chunked evaluation, chosen on all the rows:
    chosen on the first 1M, the whole array won there and then, on 10M rows (2.5 GB per
    hidden activation), ran at 3.7-6.8 M objects/s in some runs against 12-13 M chunked."""
    tm = torch_model(torch, sizes, params)
    Xt = torch.from_numpy(X)

    def proba(x, chunk):
        with torch.no_grad():
            if chunk is None:
                return torch.sigmoid(tm(x))
            out = torch.empty((x.shape[0], 1))
            for s in range(0, x.shape[0], chunk):
                out[s:s + chunk] = torch.sigmoid(tm(x[s:s + chunk]))
            return out
    chk = float(np.max(np.abs(proba(Xt[:CHECK_ROWS], None).numpy()[:, 0] - p_ref)))
    trial = {}
    n_trial = X.shape[0]
    for chunk in (TORCH_CHUNK, None):
        proba(Xt[:min(n_trial, 100_000)], chunk)   # warm up
        trial[chunk] = min(time_call(lambda: proba(Xt, chunk), 1))
    chunk = min(trial, key=trial.get)
    times = time_call(lambda: proba(Xt, chunk), reps)
    return _row("torch eager (no_grad)", X.shape[0], times, chk,
                {"api": "torch.sigmoid(model(x)) under no_grad", "chunk_rows": chunk,
                 "note": "the faster of whole-array and 65536-row chunks on "
                         f"{n_trial:,} rows: {trial}"})


def _sklearn_row(sk_nn, sizes, params, X, p_ref, n_slow, reps):
    labels = np.arange(X.shape[0]) % 2     # any two classes: only the weights matter
    sk = SklearnTrainer(sk_nn, sizes, params, X, labels, 256)
    chk = float(np.max(np.abs(sk.proba(X[:CHECK_ROWS]) - p_ref)))
    Xs = X[:n_slow]
    times = time_call(lambda: sk.clf.predict_proba(Xs), reps)
    return _row("sklearn", n_slow, times, chk, {"api": "MLPClassifier.predict_proba"})


def inference_section(cfg, backend_names, peers, results, notes):
    from ..model import MLP
    sizes, n_rows, reps = cfg["infer_arch"], cfg["infer_rows"], cfg["infer_reps"]
    n_slow = min(n_rows, cfg["infer_rows_slow"])
    n_gen = min(n_rows, 1_000_000)
    X, _, data_desc = make_data(n_gen, seed=2)
    if n_gen < n_rows:  # throughput does not depend on the values: tile the catalog
        X = np.resize(X, (n_rows, X.shape[1]))
        data_desc += f"; {n_gen:,} objects tiled to {n_rows:,} rows"
    model = MLP(list(sizes), seed=0, dtype="float32")
    model.loss = "bce"
    p_ref = model.predict_proba(X[:CHECK_ROWS])[:, 1]
    rows = _fastmlp_rows(model, X, p_ref, backend_names, n_slow, reps, notes)
    if peers.get("torch") is not None:
        rows.append(peers["torch"].call("fastmlp.bench.inference:_torch_row", list(sizes),
                                        model.params, X, p_ref, reps))
    if peers.get("sklearn.neural_network") is not None:
        rows.append(_sklearn_row(peers["sklearn.neural_network"], sizes, model.params, X,
                                 p_ref, n_slow, reps))
    if n_slow < n_rows:
        notes.append(f"inference: numpy reference and scikit-learn timed on the first "
                     f"{n_slow:,} of {n_rows:,} rows (objects/s is per row)")
    base = next((r["objects_per_s"] for r in rows if r["system"].startswith("torch")), None)
    for r in rows:
        r["ratio_vs_torch_eager"] = r["objects_per_s"] / base if base else None
    results["inference"] = {"arch": arch_name(sizes), "rows": rows, "n_rows": n_rows,
                            "dtype": "float32", "data": data_desc}
