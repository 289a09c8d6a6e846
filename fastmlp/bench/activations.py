"""Training throughput per hidden activation: one small network, fastmlp (backend auto)
and torch eager with the same activation, in interleaved rounds, after a check that both
take the same first steps.

ReLU is what the training grid measures; this section tells whether a net with a smooth
activation (ELU, tanh, sigmoid, softplus, GELU) keeps fastmlp's lead: each of those costs
an exp, log1p or tanh per hidden unit and sample, in the forward and the backward pass.
"""

import math

from .common import LOSS_CHECK_RTOL, config_name, log, rel_diff
from .data import make_data
from .peers import FastmlpTrainer
from .timing import summarise
from .torch_process import Ref
from .training import AUTO, time_in_rounds

ACTIVATIONS = ("relu", "elu", "tanh", "sigmoid", "softplus", "gelu")
TORCH = "torch eager"


def _torch_trainer(proc, sizes, p0, act):
    return proc.new("fastmlp.bench.peers:TorchTrainer", ("run", "losses_in_order"),
                    list(sizes), p0, Ref("X"), Ref("y"), activation=act)


def _loss_check(fast, torch_make, bs, k):
    """The first k batch losses of both systems; the relative difference to torch."""
    ours = fast.losses_in_order(bs, k)
    if torch_make is None:
        return {"rel_diff": None, "ok": None}
    d = rel_diff(ours, torch_make().losses_in_order(bs, k))
    return {"rel_diff": d, "ok": d <= LOSS_CHECK_RTOL}


def activation_section(cfg, peers, results, notes):
    from ..backends import tuning
    from ..model import MLP
    sizes, bs = cfg["activation_config"]
    n_data = max(cfg["max_rows"], cfg["min_batches"] * bs, cfg["check_steps"] * bs)
    X, y, data_desc = make_data(n_data, seed=0)
    torch = peers.get("torch")
    if torch is not None:
        torch.put("X", X)
        torch.put("y", y)
    p0 = MLP(list(sizes), seed=0, dtype="float32").params.copy()
    sec = results["activations"] = {
        "config": config_name(sizes, bs), "data": data_desc, "optimizer": "adam",
        "dtype": "float32", "systems": {
            AUTO: "fastmlp.fit(..., backend='auto') as in the training section, "
                  "MLP(sizes, activation=...)",
            TORCH: "as in the training section with the same activation module "
                   "(nn.GELU(approximate='tanh'): fastmlp's GELU is the tanh form)"},
        "rows": []}
    for act in ACTIVATIONS:
        def fast(act=act):
            return FastmlpTrainer("auto", sizes, p0, X, y, activation=act)

        torch_make = None if torch is None else (lambda act=act: _torch_trainer(torch, sizes,
                                                                                p0, act))
        try:   # on the backend that auto trains this shape on
            chosen = FastmlpTrainer(tuning.choose_backend(sizes, bs, "float32"), sizes, p0, X,
                                    y, use_fit=False, activation=act)
            check = _loss_check(chosen, torch_make, bs, cfg["check_steps"])
        except Exception as exc:
            check = {"rel_diff": math.inf, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        systems = [(AUTO, fast)] + ([(TORCH, torch_make)] if torch_make else [])
        state = time_in_rounds(systems, bs, dict(cfg, epochs=cfg["activation_epochs"]),
                               n_data, notes, f"{act} {sec['config']}")
        row = {"activation": act, "loss_check": check}
        for label, _ in systems:
            st = state[label]
            if "error" in st or not st["rounds"]:
                row[label] = {"error": st.get("error", "not measured")}
            else:
                s = summarise(st["n"], sizes, st["rounds"])
                row[label] = {k: s[k] for k in ("samples_per_s", "samples_per_s_rounds",
                                                "n_samples", "epochs_timed")}
        fa, to = row[AUTO].get("samples_per_s_rounds"), (row.get(TORCH) or {}).get(
            "samples_per_s_rounds")
        if fa and to:   # the median of the per-round ratios, as the targets take it
            ratios = sorted(a / b for a, b in zip(fa, to))
            row["ratio_vs_torch_eager"] = ratios[len(ratios) // 2]
        sec["rows"].append(row)
        diff = check.get("rel_diff")
        log(f"[activations] {sec['config']} {act:<8} fastmlp "
            f"{row[AUTO].get('samples_per_s', float('nan')):>12,.0f}  torch "
            f"{(row.get(TORCH) or {}).get('samples_per_s', float('nan')):>10,.0f} samples/s"
            + (f"  ratio {row['ratio_vs_torch_eager']:.2f}x" if "ratio_vs_torch_eager" in row
               else "")
            + ("" if diff is None else f"  loss check rel {diff:.1e}"))
        if check.get("ok") is False:
            notes.append(f"activations: {act}: the loss check against torch failed "
                         f"(rel {diff:.1e} > {LOSS_CHECK_RTOL:g})"
                         + (f": {check['error']}" if "error" in check else ""))
        if torch is not None:
            torch.drop_all()
    relu = next((r[AUTO].get("samples_per_s") for r in sec["rows"]
                 if r["activation"] == "relu"), None)
    for r in sec["rows"]:   # what the activation costs fastmlp, against its own ReLU net
        sps = r[AUTO].get("samples_per_s")
        if relu and sps:
            r["share_of_relu_speed"] = sps / relu
