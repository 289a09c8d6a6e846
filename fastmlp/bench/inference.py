"""Inference throughput: objects/s through predict_proba on a large catalog, fastmlp on every
backend vs PyTorch eager under no_grad and scikit-learn, probabilities checked first, the
systems taking turns in rounds."""

import numpy as np

from .common import PROBA_CHECK_ATOL, arch_name, log, median, now, time_call
from .data import make_data
from .peers import SklearnTrainer, torch_model

CHECK_ROWS = 10_000
TORCH_CHUNK = 65536


def _row(system, rows_used, times, check, extra=None):
    """The row of one system from its time in each round (seconds for rows_used rows)."""
    t = median(times)
    row = {"system": system, "rows": rows_used, "s": t, "objects_per_s": rows_used / t,
           "objects_per_s_rounds": [rows_used / x for x in times],
           "max_abs_diff_vs_fastmlp_numpy": check,
           "check_ok": check is not None and check <= PROBA_CHECK_ATOL, **(extra or {})}
    log(f"[infer] {system:<24} {row['objects_per_s']:>14,.0f} objects/s "
        f"({rows_used:,} rows, check {'OK' if row['check_ok'] else 'FAILED'})")
    return row


def _fastmlp_calls(model, X, p_ref, backend_names, n_slow, notes):
    """[(system, call, rows, check, extra)]: one predict_proba over the rows per call."""
    calls = []
    for b in backend_names:
        try:
            model.backend = b
            Xb = X[:n_slow] if b == "numpy" else X
            chk = float(np.max(np.abs(model.predict_proba(X[:CHECK_ROWS])[:, 1] - p_ref)))

            def call(b=b, Xb=Xb):
                model.backend = b
                model.predict_proba(Xb)
            calls.append((f"fastmlp[{b}]", call, Xb.shape[0], chk,
                          {"api": "MLP.predict_proba"}))
        except Exception as exc:
            notes.append(f"inference fastmlp[{b}] failed: {type(exc).__name__}: {exc}")
    return calls


class TorchProba:
    """torch eager under no_grad, built in the PyTorch worker; ``run()`` returns the time of
    one evaluation of every row, so the pipe to the worker is not timed.

    torch gets the better of whole-array and chunked evaluation, chosen on all the rows:
    chosen on the first 1M, the whole array won there and then, on 10M rows (2.5 GB per
    hidden activation), ran at 3.7-6.8 M objects/s in some runs against 12-13 M chunked."""

    def __init__(self, torch, sizes, params, X, p_ref):
        self.torch, self.tm, self.Xt = torch, torch_model(torch, sizes, params), \
            torch.from_numpy(X)
        self.check = float(np.max(np.abs(
            self._proba(self.Xt[:CHECK_ROWS], None).numpy()[:, 0] - p_ref)))
        self.trial = {}
        for chunk in (TORCH_CHUNK, None):
            self._proba(self.Xt[:min(X.shape[0], 100_000)], chunk)   # warm up
            self.trial[chunk] = min(time_call(lambda: self._proba(self.Xt, chunk), 1))
        self.chunk = min(self.trial, key=self.trial.get)

    def _proba(self, x, chunk):
        torch = self.torch
        with torch.no_grad():
            if chunk is None:
                return torch.sigmoid(self.tm(x))
            out = torch.empty((x.shape[0], 1))
            for s in range(0, x.shape[0], chunk):
                out[s:s + chunk] = torch.sigmoid(self.tm(x[s:s + chunk]))
            return out

    def run(self):
        t0 = now()
        self._proba(self.Xt, self.chunk)
        return now() - t0

    def info(self):
        return {"check": self.check, "chunk": self.chunk, "trial": self.trial}


def _torch_call(proc, sizes, params, X, p_ref):
    obj = proc.new("fastmlp.bench.inference:TorchProba", ("run", "info"), list(sizes),
                   params, X, p_ref)
    info = obj.info()
    return ("torch eager (no_grad)", obj.run, X.shape[0], info["check"],
            {"api": "torch.sigmoid(model(x)) under no_grad", "chunk_rows": info["chunk"],
             "note": "the faster of whole-array and 65536-row chunks on "
                     f"{X.shape[0]:,} rows: {info['trial']}"})


def _sklearn_call(sk_nn, sizes, params, X, p_ref, n_slow):
    labels = np.arange(X.shape[0]) % 2     # any two classes: only the weights matter
    sk = SklearnTrainer(sk_nn, sizes, params, X, labels, 256)
    chk = float(np.max(np.abs(sk.proba(X[:CHECK_ROWS]) - p_ref)))
    Xs = X[:n_slow]
    return ("sklearn", lambda: sk.clf.predict_proba(Xs), n_slow, chk,
            {"api": "MLPClassifier.predict_proba"})


def interleaved_calls(calls, n_rounds, notes):
    """{system: [its time in each round]}: after one warm-up call each, every call once per
    round, in turns (the order reversed every round), as the training section's systems
    take turns: a shared host's slow spell then falls on every system of a round, and a
    ratio taken within each round cancels it (on the AMD EPYC VM torch eager's inference
    moved 4.8-6.6 M objects/s between runs of the same day, timed in a block of its own).
    A call that returns a float (the PyTorch worker's) gives its own time; a system whose
    call fails is named in notes and left out."""
    times = {c[0]: [] for c in calls}
    failed = set()
    for rnd in range(-1, n_rounds):     # round -1: the warm-up
        for name, fn, *_ in (calls if rnd % 2 == 0 else calls[::-1]):
            if name in failed:
                continue
            try:
                t0 = now()
                took = fn()
                took = took if isinstance(took, float) else now() - t0
            except Exception as exc:
                failed.add(name)
                notes.append(f"inference {name} failed: {type(exc).__name__}: {exc}")
                continue
            if rnd >= 0:
                times[name].append(took)
    return {name: t for name, t in times.items() if name not in failed}


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
    calls = _fastmlp_calls(model, X, p_ref, backend_names, n_slow, notes)
    torch = peers.get("torch")
    if torch is not None:
        try:
            calls.append(_torch_call(torch, sizes, model.params, X, p_ref))
        except Exception as exc:
            notes.append(f"inference torch eager failed: {type(exc).__name__}: {exc}")
    if peers.get("sklearn.neural_network") is not None:
        calls.append(_sklearn_call(peers["sklearn.neural_network"], sizes, model.params, X,
                                   p_ref, n_slow))
    times = interleaved_calls(calls, reps, notes)
    model.backend = None
    rows = [_row(name, n, times[name], chk, extra) for name, _, n, chk, extra in calls
            if name in times]
    if torch is not None:
        torch.drop_all()
    if n_slow < n_rows:
        notes.append(f"inference: numpy reference and scikit-learn timed on the first "
                     f"{n_slow:,} of {n_rows:,} rows (objects/s is per row)")
    base = next((r["objects_per_s"] for r in rows if r["system"].startswith("torch")), None)
    for r in rows:
        r["ratio_vs_torch_eager"] = r["objects_per_s"] / base if base else None
    results["inference"] = {"arch": arch_name(sizes), "rows": rows, "n_rows": n_rows,
                            "dtype": "float32", "data": data_desc}
