"""The results as a markdown report and a PNG chart."""

import io

import numpy as np

from .._validate import counted
from .common import LOSS_CHECK_RTOL
from .targets import peak_share


def _fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def _family_model(cpu):
    """'x86 family 25 model 1' where the result records them, else ''."""
    if cpu.get("x86_family") is None or cpu.get("x86_model") is None:
        return ""
    return f"x86 family {cpu['x86_family']} model {cpu['x86_model']}"


def _cpu_name(cpu):
    """'AMD EPYC, x86 family 25 model 1': the name alone does not tell every CPU apart."""
    fm = _family_model(cpu)
    return f"{cpu.get('model', '')}, {fm}" if fm else cpu.get("model", "")


def _header(results):
    meta, m = results["meta"], results.get("machine") or {}
    cpu = meta.get("cpu") or {}
    bf16 = [k for k, v in (cpu.get("bf16_amx") or {}).items() if v]
    fm = _family_model(cpu)
    fm = f", {fm}" if fm else ""
    auto = (results.get("training") or {}).get("auto_resolves_to") or meta.get("default_backend")
    simd = " ".join(cpu.get("simd", []))
    L = [f"# fastmlp benchmark ({meta['mode']}) on {_cpu_name(cpu) or '?'}\n",
         f"- date: {meta['timestamp']}  \n- command: `{meta['command']}`  \n"
         f"- commit: {meta.get('git_commit')}  \n- threads: {meta['threads']} for every "
         f"system  \n- backends: {', '.join(meta['backends'])} (auto = "
         f"{auto})"
         "  \n- versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v),
         f"- CPU: {cpu.get('model')} ({cpu.get('vendor')}{fm}); SIMD: {simd}"
         f"; AVX512-BF16 / AMX: {' '.join(bf16) or 'none'}"]
    if m:
        L.append(f"- {counted(m.get('logical_cpus'), 'logical CPU')}, load average at start "
                 f"{meta.get('load_average_start')}; env: "
                 + (", ".join(f"{k}={v}" for k, v in m["env"].items()) or "none"))
        blas = m.get("numpy_blas")
        if blas:
            L.append(f"- NumPy BLAS: {blas['internal_api']} {blas['version']} "
                     f"({blas['architecture']} kernels)")
    if meta["mode"] != "full":
        L.append(f"\n**{meta['mode']} run**: smaller epochs and fewer rounds than the full run; "
                 "no target is judged (they say \"not measured at full size\").")
    return L


def _machine(m):
    L = ["\n## Machine limits\n", "| measure | value |\n|---|---:|"]
    L += [f"| sgemm {r['shape']} | {r['gflops_best']:.1f} GFLOP/s |" for r in m["sgemm"]]
    bw = m["bandwidth"]
    L += [f"| {k} ({bw['impl']}, {bw['array_mb']:.0f} MB arrays), median | "
          f"{bw[k]['gbs_median']:.1f} GB/s |" for k in bw.get("kernels", ())]
    if "sgemm_end" in m:
        L.append(f"| sgemm peak, again at the end | "
                 f"{max(r['gflops_best'] for r in m['sgemm_end']):.1f} GFLOP/s |")
        L.append(f"| bandwidth, again at the end | {m['bandwidth_end']['gbs']:.1f} GB/s |")
    L.append(f"| **sgemm peak used** (highest best) | {m['sgemm_peak_gflops']:.1f} GFLOP/s |")
    L.append(f"| **bandwidth used** (highest median, {bw.get('gbs_kernel')}) | "
             f"{m['bandwidth_gbs']:.1f} GB/s |")
    return L


def _training_cell(r):
    if r is None:
        return "n/a"
    if "samples_per_s" not in r:
        return "error"
    c = f"{r['samples_per_s']:,.0f}"
    if r.get("ratio_vs_torch_eager") is not None:
        c += f" ({r['ratio_vs_torch_eager']:.2f}x"
        c += f", {peak_share(r):.0%})" if peak_share(r) is not None else ")"
    s = r.get("samples_per_s_spread")
    if s and s["n"] > 2:
        c += f" [{s['min'] / 1e3:,.0f}k-{s['max'] / 1e3:,.0f}k]"
    return c


def _training(tr):
    probe = tr.get("sgemm_probe")
    L = ["\n## Training throughput (samples/s, Adam, float32, median of timed epochs; ratio "
         "to torch eager; share of the sgemm peak"
         + (" timed in the same rounds (median of the rounds' shares; torch.compile, "
            "timed apart: of the run's peak)" if probe else "")
         + "; [min-max over the epochs])\n", f"Data: {tr['data']}\n"]
    L += [f"- {k}: {v}" for k, v in tr.get("systems", {}).items()] + [""]
    systems = list(dict.fromkeys(r["system"] for r in tr["rows"]))
    L += ["| config | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
    for cname in dict.fromkeys(r["config"] for r in tr["rows"]):
        by_sys = {r["system"]: r for r in tr["rows"] if r["config"] == cname}
        L.append(f"| {cname} | " + " | ".join(_training_cell(by_sys.get(s))
                                               for s in systems) + " |")
    fitrows = [r for r in tr["rows"] if r.get("fit_bookkeeping_share") is not None]
    if fitrows:
        L.append("\nfastmlp.fit per-epoch bookkeeping (time outside train_epoch) as a share of "
                 "the epoch: " + ", ".join(f"{r['config']} {r['system']} "
                                           f"{r['fit_bookkeeping_share']:.0%}" for r in fitrows))
        L.append("\nfastmlp.fit per-call set-up (once per fit call, before its first epoch): "
                 + ", ".join(f"{r['config']} {r['system']} "
                             f"{max(r['fit_setup_s'], 0.0) * 1e3:.0f} ms"   # < 0: noise
                             for r in fitrows if "fit_setup_s" in r))
    if probe:
        peaks = {r["config"]: r["sgemm_peak_rounds"] for r in tr["rows"]
                 if r.get("sgemm_peak_rounds")}
        L.append(f"\nsgemm peak timed between rounds ({probe['shape']}, best of "
                 f"{probe['min_time_s']:g} s; a round's peak is the higher of the timings "
                 "before and after it), GFLOP/s: "
                 + "; ".join(f"{c} " + ", ".join(f"{v:.0f}" for v in p)
                             for c, p in peaks.items()))
    chosen = [r for r in tr["rows"] if r.get("auto_backend")]
    if chosen:
        L.append("\nfastmlp[auto] trained on (the backend measured fastest for the shape "
                 "class on this CPU): " + ", ".join(f"{r['config']} {r['auto_backend']}"
                                                    for r in chosen))
    L.append("\nLoss checks (first steps from the same weights, same batches, "
             f"rtol {LOSS_CHECK_RTOL:g}):\n")
    for c in tr["checks"]:
        worst = max(c["rel_diff"].items(), key=lambda kv: kv[1])
        L.append(f"- {c['config']}: {'OK' if c['ok'] else 'FAILED'}, "
                 f"{counted(len(c['losses']), 'system')} vs {c['reference']}, "
                 f"worst {worst[0]} {worst[1]:.1e}"
                 + (f"; sklearn forward max|dp| {c['sklearn_forward_max_abs_diff']:.1e}"
                    if "sklearn_forward_max_abs_diff" in c else ""))
    if tr.get("compile"):
        L.append(f"- torch.compile: {tr['compile'].get('status') or tr['compile'].get('skipped')}")
    return L


def _optimizer_cell(r):
    if r is None or r.get("gbs") is None:
        return "n/a"
    c = f"{r['gbs']:.1f}"
    f, s = r.get("frac_bandwidth_alongside"), r.get("frac_bandwidth_alongside_spread")
    if f is not None:
        c += f" ({f:.0%}" + (f", IQR {s['q1']:.0%}-{s['q3']:.0%})" if s else ")")
    return c + ("" if r.get("check_ok") else " CHECK FAILED")


def _optimizers(op):
    L = [f"\n## Optimizer update, {op['n_params']:.0e} float32 params, "
         f"{counted(op.get('rounds'), 'interleaved round')} (GB/s; median over rounds of the "
         "share of that round's streaming bandwidth, with its IQR; every timed call starts "
         "with its arrays out of the cache; the run's highest bandwidth was "
         f"{_fmt(op['bandwidth_gbs'], '.1f')} GB/s)\n"]
    systems = list(dict.fromkeys(r["system"] for r in op["rows"]))
    bound = any(r.get("frac_read_bound") is not None for r in op["rows"])
    L += ["| optimizer | B/param | bandwidth in the rounds (min-max) | "
          + ("reads alone (limit) | " if bound else "") + " | ".join(systems)
          + " |", "|---|---:|---:|" + ("---:|" if bound else "") + "---:|" * len(systems)]
    for o in dict.fromkeys(r["optimizer"] for r in op["rows"]):
        by_sys = {r["system"]: r for r in op["rows"] if r["optimizer"] == o}
        any_row = next(iter(by_sys.values()))
        s = next((r["bandwidth_alongside_spread"] for r in by_sys.values()
                  if r.get("bandwidth_alongside_spread")), None)
        bw = f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})" if s else "-"
        lim = next((r for r in by_sys.values() if r.get("frac_read_bound") is not None), None)
        reads = (f"{lim['read_gbs_alongside']:.1f} ({lim['frac_read_bound']:.0%}) | "
                 if lim else "- | ") if bound else ""
        L.append(f"| {o} | {any_row['bytes_per_param']} | {bw} | {reads}"
                 + " | ".join(_optimizer_cell(by_sys.get(x)) for x in systems) + " |")
    if bound:
        L.append("\nReads alone: the GB/s at which a loop reads as many arrays as the update "
                 "and writes none, in the same rounds; in brackets, the share of each round's "
                 "bandwidth that the update would reach, at the median over rounds, if it "
                 "read that fast and its writes cost nothing: (bytes read + written) / bytes "
                 "read x that rate.  No update of those arrays passes that share unless it reads "
                 "them faster than the plain loop.")
    same = [r for r in op["rows"] if r.get("frac_same_traffic_stream") is not None]
    if same:
        L.append("\nBeside the targets (judged against each round's fastest stream), the "
                 "median over rounds of each update's share of the streaming kernel that "
                 "moves the same bytes per element in the same round (a memory system serves "
                 "some read/write mixes faster than others): "
                 + ", ".join(f"{r['optimizer']} {r['system']} "
                             f"{r['frac_same_traffic_stream']:.0%} of {r['same_traffic_stream']}"
                             for r in same))
    return L


def _activations(sec):
    auto, torch = "fastmlp[auto]", "torch eager"
    L = [f"\n## Training per hidden activation, {sec['config']}, Adam float32 (samples/s)\n",
         "| activation | fastmlp[auto] | share of its ReLU speed | torch eager | "
         "vs torch eager | loss check |\n|---|---:|---:|---:|---:|---|"]
    for r in sec["rows"]:
        check = r["loss_check"]
        ok = ("-" if check.get("ok") is None else
              f"{'OK' if check['ok'] else 'FAILED'} (rel {check['rel_diff']:.1e})")
        L.append(f"| {r['activation']} | {_fmt(r[auto].get('samples_per_s'))} | "
                 f"{_fmt(r.get('share_of_relu_speed'), '.0%')} | "
                 f"{_fmt((r.get(torch) or {}).get('samples_per_s'))} | "
                 f"{_fmt(r.get('ratio_vs_torch_eager'), '.2f')} | {ok} |")
    L.append("\nRatios are the median of the per-round ratios.")
    return L


def _inference(inf):
    L = [f"\n## Inference, {inf['arch']}, predict_proba (objects/s)\n",
         "| system | rows | objects/s | vs torch eager | check |\n|---|---:|---:|---:|---|"]
    L += [f"| {r['system']} | {r['rows']:,} | {r['objects_per_s']:,.0f} | "
          f"{_fmt(r.get('ratio_vs_torch_eager'), '.2f')} | "
          f"{'OK' if r['check_ok'] else 'FAILED'} |" for r in inf["rows"]]
    return L


def targets_markdown(targets):
    L = ["\n## Targets\n", "| target | origin | measured | status |\n|---|---|---|---|"]
    L += [f"| {t['target']} | {t.get('origin', '')} | {t['measured']} | **{t['status']}** |"
          for t in targets]
    return L


def markdown_report(results):
    L = _header(results)
    if results.get("machine"):
        L += _machine(results["machine"])
    if results.get("training"):
        L += _training(results["training"])
    if results.get("activations"):
        L += _activations(results["activations"])
    if results.get("optimizers"):
        L += _optimizers(results["optimizers"])
    if results.get("inference"):
        L += _inference(results["inference"])
    L += targets_markdown(results.get("targets", []))
    if results.get("notes"):
        L += ["\n## Notes\n"] + [f"- {n}" for n in results["notes"]]
    return "\n".join(L) + "\n"


def chart_title(results):
    """The chart's title: what was trained, on how many threads, which CPU, which run."""
    meta = results["meta"]
    return (f"fastmlp training, Adam float32, {counted(meta['threads'], 'thread')}, "
            f"{_cpu_name(meta.get('cpu') or {})} ({meta['mode']}, {meta['timestamp'][:16]})")


def chart_png(results):
    """PNG bytes: samples/s per configuration and system, log scale (None if no matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return None
    rows = [r for r in (results.get("training") or {}).get("rows", []) if r.get("samples_per_s")]
    if not rows:
        return None
    configs = list(dict.fromkeys(r["config"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(configs)), 5))
    w = 0.8 / len(systems)
    for i, s in enumerate(systems):
        vals = [next((r["samples_per_s"] for r in rows if r["config"] == c and
                      r["system"] == s), 0) for c in configs]
        ax.bar(np.arange(len(configs)) + (i - (len(systems) - 1) / 2) * w, vals, w, label=s)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(configs)))
    ax.set_xticklabels(configs, rotation=20, ha="right")
    ax.set_ylabel("training samples/s (log)")
    ax.set_title(chart_title(results), fontsize=9)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
