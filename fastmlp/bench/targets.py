"""The product's speed targets, as data, and the one function that judges them.

Each target is a row: a section, what it is about (a grid configuration, an optimizer, an
inference architecture), what it is compared with (a peer measured in the same run, or a
machine limit measured in the same run), and the least ratio or share that meets it.  Adding
a target adds a row.

A target is judged only on a full run (``fastmlp bench`` without --quick / --tiny): the other
modes time smaller epochs and fewer rounds, so their rows say "not measured at full size".
The figure judged is what a user gets: ``fastmlp[auto]`` where it was measured, else the
default backend; if only another backend reaches the target the status says so.  A ratio to
another system of the training section (a peer, or the fastest backend for auto), and
inference's ratio to torch, is the median over the interleaved rounds of the ratio within
each round, as the optimizer section's shares of the bandwidth of the same rounds are; the
ratio of the medians is shown beside it.  A target not met says so when it is out of every
system's reach on the machine (``_out_of_reach``).
"""

from dataclasses import dataclass

from .._validate import counted
from .common import config_name, median
from .modes import FULL_MODE, GRID
from .optimizers import OPTIMIZER_CASES

SGEMM_PEAK = "sgemm peak"
BANDWIDTH = "bandwidth in the same rounds"
FASTEST_BACKEND = "fastest backend"
IN_KERNEL = "the epoch inside train_epoch"      # 1 - fit's per-epoch bookkeeping share
NOT_AT_FULL_SIZE = "not measured at full size"
AUTO = "fastmlp[auto]"
# training rows: samples/s of each interleaved round; inference rows: objects/s
ROUNDS_KEY = {"samples_per_s": "samples_per_s_rounds",
              "objects_per_s": "objects_per_s_rounds"}
# A result up to 10 % above a measured limit is taken as "at the limit" (the limit is itself a
# measurement of simple kernels); beyond that the limit was under-measured.
LIMIT_SLACK = 1.10
UNRELIABLE = ("unreliable: more than 110% of a measured machine limit, so the limit was "
              "under-measured (busy machine?); rerun on a quiet machine")


@dataclass(frozen=True)
class Target:
    section: str      # "training", "auto", "optimizers" or "inference"
    subject: str      # grid configuration, optimizer label or inference architecture
    versus: str       # a peer's system name, or SGEMM_PEAK / BANDWIDTH / FASTEST_BACKEND
    at_least: float   # least ratio to the peer, or least share of the limit
    origin: str       # where the target was set

    @property
    def is_share(self):
        return self.versus in (SGEMM_PEAK, BANDWIDTH, FASTEST_BACKEND, IN_KERNEL)

    def describe(self):
        need = f">= {self.at_least:.0%} of" if self.is_share else f">= {self.at_least:g}x"
        if self.section == "auto":
            return f"auto on {self.subject}: {need} the {FASTEST_BACKEND}'s samples/s"
        if self.section == "optimizers":
            return f"{self.subject} update: {need} {self.versus}"
        what = "through fit" if self.versus == SGEMM_PEAK else ""
        return f"{self.section} {self.subject}: {need} {self.versus} {what}".rstrip()


TARGETS = (
    Target("training", "5-32-32-1@256", "torch eager", 30, "issue 13"),
    Target("training", "5-32-32-1@256", SGEMM_PEAK, 0.25, "issue 13"),
    Target("training", "5-128-128-128-1@1024", "torch eager", 4, "issue 13"),
    Target("training", "5-512-512-1@4096", "torch eager", 1.3, "issue 13"),
    Target("training", "5-512-512-1@4096", "torch eager fused", 1.1, "issue 13"),
    Target("training", "5-512-512-1@4096", SGEMM_PEAK, 0.70, "issue 13"),
    Target("training", "5-512-512-1@256", "torch eager fused", 1.1, "issue 13"),
    Target("training", "5-32-32-1@256", IN_KERNEL, 0.95, "issue 13"),
    Target("training", "5-32-32-1@4096", "torch eager", 3, "issues 3-5"),
    *(Target("auto", config_name(s, b), FASTEST_BACKEND, 0.90, "issue 13") for s, b in GRID),
    *(Target("optimizers", c[0], BANDWIDTH, 0.90, "issue 13") for c in OPTIMIZER_CASES),
    Target("optimizers", "adam", "torch fused", 1.0, "issues 3-5"),
    Target("inference", "5-64-64-1", "torch eager (no_grad)", 3, "issues 3-5"),
)


# -- what each section offers to judge ---------------------------------------------------

def _rows(results, t):
    """(fastmlp rows about t's subject, the row of t.versus or None, key of the speed)."""
    sec = results.get({"auto": "training"}.get(t.section, t.section)) or {}
    rows = sec.get("rows", [])
    if t.section in ("training", "auto"):
        mine = [r for r in rows if r.get("config") == t.subject and "samples_per_s" in r]
        key = "samples_per_s"
    elif t.section == "optimizers":
        mine = [r for r in rows if r.get("optimizer") == t.subject and r.get("gbs")]
        key = "gbs"
    else:
        mine = rows if sec.get("arch") == t.subject else []
        key = "objects_per_s"
    ours = [r for r in mine if r["system"].startswith("fastmlp[")]
    peer = next((r for r in mine if r["system"] == t.versus), None)
    return ours, peer, key


def peak_share(r):
    """Row r's share of the sgemm peak: of the peak timed in the same rounds where it was
    (the median over rounds of the round's share), else of the run's peak.  The run's peak is
    the higher of two timings, at the start and at the end of the run, while the rounds
    spread over minutes: on the AMD EPYC VM, whose speed moves by a third within minutes,
    the same C build trained 5-512-512-1 @ 4096 at 79 k samples/s in a full run and at 91 k
    in the same timing code two hours later, the sgemm peak 183 GFLOP/s both times."""
    f = r.get("frac_sgemm_peak_alongside")
    return f if f is not None else r.get("frac_sgemm_peak")


def _value(t, r, peer, ours, key):
    """The figure of fastmlp row r that t is judged on (None if it was not measured)."""
    if t.versus == SGEMM_PEAK:
        return peak_share(r)
    if t.versus == IN_KERNEL:
        k = r.get("samples_per_s_train_epoch_only")
        return r[key] / k if k else None
    if t.versus == BANDWIDTH:   # the bandwidth of the same rounds, else the run's highest
        f = r.get("frac_bandwidth_alongside")
        return f if f is not None else r.get("frac_bandwidth")
    paired, of_medians = _ratios(t, r, peer, ours, key)
    return paired if paired is not None else of_medians


def _versus_rows(t, peer, ours):
    """The rows a ratio target divides by: the peer's, or every backend but auto."""
    if t.versus == FASTEST_BACKEND:
        return [o for o in ours if o["system"] != AUTO]
    return [peer] if peer else []


def _ratios(t, r, peer, ours, key):
    """(median over rounds of r's rate / the best versus rate of the same round, or None
    where the rows hold no common rounds; r's median / the best versus median, or None).

    The training section times every system in the same interleaved rounds; a shared host's
    slow spell lasts seconds to minutes and falls on a few neighbouring runs, so dividing
    within a round cancels what the host did to both, as the optimizer section's shares of
    the bandwidth of the same rounds do.  Dividing medians taken at different moments does
    not: on a noisy host, two runs of the same backend came out 0.64x apart that way."""
    versus = _versus_rows(t, peer, ours)
    if not versus:
        return None, None
    of_medians = r[key] / max(v[key] for v in versus)
    rk = ROUNDS_KEY.get(key)
    mine, theirs = r.get(rk), [v.get(rk) for v in versus]
    if not mine or any(not v or len(v) != len(mine) for v in theirs):
        return None, of_medians
    per_round = [x / max(v[i] for v in theirs) for i, x in enumerate(mine)]
    return median(per_round), of_medians


def _check_failed(t, r, results):
    """Why r cannot count (a failed loss / update / probability check), or None."""
    if t.section in ("training", "auto"):
        chk = next((c for c in (results.get("training") or {}).get("checks", [])
                    if c["config"] == t.subject), None)
        return "loss check FAILED" if chk is not None and not chk.get("ok") else None
    return None if r.get("check_ok", True) else "check FAILED"


def _suspect(t, r, value):
    """A share well above a limit means the limit was under-measured.  Not for a bandwidth
    measured in the same rounds: an update can stream better than the naive loops."""
    if t.versus == SGEMM_PEAK:
        return (value or 0) > LIMIT_SLACK
    return t.versus == BANDWIDTH and r.get("frac_bandwidth_alongside") is None \
        and (value or 0) > LIMIT_SLACK


def _fmt(t, v):
    """v as a share (24%) or a ratio (1.15x), with as many more decimals as it takes for
    the printed figure to fall on the same side of the target as the value (a share of
    0.2463 against 25 % prints 24.6 %, never "25 %" beside NOT met)."""
    if v is None:
        return "?"
    for extra in range(4):
        if t.is_share:
            text, shown = f"{v:.{extra}%}", round(v * 100, extra) / 100
        else:
            text, shown = f"{v:.{2 + extra}f}x", round(v, 2 + extra)
        if (shown >= t.at_least) == (v >= t.at_least):
            return text
    return text


def _detail(t, r, results):
    """What a share is a share of, and how much it moved between rounds."""
    if t.versus == SGEMM_PEAK:
        peak = (results.get("machine") or {}).get("sgemm_peak_gflops")
        rounds, run = r.get("sgemm_peak_rounds"), r.get("frac_sgemm_peak")
        if r.get("frac_sgemm_peak_alongside") is None or not rounds:
            return f" of {peak:.0f} GFLOP/s" if peak else ""
        text = f" of the peak in the same rounds ({min(rounds):.0f}-{max(rounds):.0f} GFLOP/s"
        return text + (f"; of the run's {peak:.0f}: {run:.1%})" if peak and run else ")")
    if t.versus == BANDWIDTH:
        s, bw = r.get("frac_bandwidth_alongside_spread"), r.get("bandwidth_alongside_gbs")
        if s and bw:
            return (f" of {bw:.1f} GB/s (IQR {s['q1']:.0%}-{s['q3']:.0%} over "
                    f"{counted(s['n'], 'round')})")
    return ""


def _rounds_detail(t, r, peer, ours, key):
    """How a ratio was taken: ", median of 3 rounds' ratios (ratio of medians 0.97x)"."""
    if t.section not in ("training", "auto", "inference") or t.versus in (SGEMM_PEAK,
                                                                          IN_KERNEL):
        return ""
    paired, of_medians = _ratios(t, r, peer, ours, key)
    if paired is None:   # no common rounds: the ratio of the medians was judged
        return ""
    n = len(r[ROUNDS_KEY[key]])
    ratios = counted(n, "round's ratio", "rounds' ratios")
    return (f", median of {ratios} "
            f"(ratio of medians {_fmt(t, of_medians)})")


# -- judging -------------------------------------------------------------------------------

def _user_row(t, ours, default):
    """The row of what a user gets: fastmlp[auto], else the default backend (None if
    neither was measured)."""
    if t.section == "auto":
        return next((r for r in ours if r["system"] == AUTO), None)
    for name in (AUTO, f"fastmlp[{default}]"):
        r = next((r for r in ours if r["system"] == name), None)
        if r is not None:
            return r
    return None


def judge(t, results):
    """One row of the targets table for target t."""
    meta = results.get("meta") or {}
    out = {"target": t.describe(), "section": t.section, "subject": t.subject,
           "versus": t.versus, "at_least": t.at_least, "origin": t.origin}
    ours, peer, key = _rows(results, t)
    values = {r["system"]: _value(t, r, peer, ours, key) for r in ours}
    values = {s: v for s, v in values.items() if v is not None}
    mine = _user_row(t, [r for r in ours if r["system"] in values], meta.get("default_backend"))
    if mine is None and values and t.section != "auto":
        mine = next(r for r in ours if r["system"] == max(values, key=values.get))
    full = meta.get("mode") == FULL_MODE
    if mine is None:
        missing = "not measured"
        if ours and t.section == "auto":
            missing = "fastmlp[auto] not measured"
        elif ours and not t.is_share and peer is None:
            missing = f"{t.versus} not measured"
        return {**out, "status": "n/a" if full else NOT_AT_FULL_SIZE, "measured": missing}
    v = values[mine["system"]]
    text = (f"{_fmt(t, v)}{_detail(t, mine, results)}"
            f"{_rounds_detail(t, mine, peer, ours, key)} ({mine['system']})")
    best = max(values, key=values.get)
    # which backend would reach a speed target matters; for auto's own choice, or for the
    # share of fit's epoch spent in the kernel (highest on the slowest kernel), it does not
    others_count = t.section != "auto" and t.versus != IN_KERNEL
    if best != mine["system"] and others_count:
        text += f"; best: {_fmt(t, values[best])} ({best})"
    out.update({"value": v, "system": mine["system"], "measured": text})
    if not full:
        return {**out, "status": NOT_AT_FULL_SIZE}
    fail = _check_failed(t, mine, results)
    if fail:
        return {**out, "status": "NOT met", "measured": text + "; " + fail}
    if _suspect(t, mine, v):
        return {**out, "status": "unreliable", "measured": text + "; " + UNRELIABLE}
    if v >= t.at_least:
        return {**out, "status": "met"}
    best_row = next(r for r in ours if r["system"] == best)
    if values[best] >= t.at_least and others_count and not _check_failed(t, best_row, results):
        return {**out, "status": f"met with backend={best[len('fastmlp['):-1]} only"}
    return {**out, "status": "NOT met",
            "measured": text + _out_of_reach(t, peer, results) + _same_code(t, mine, ours)}


def _same_code(t, mine, ours):
    """For an auto target not met: when auto trained on the backend whose median rate was
    the highest, the two ran the same code, and what separates them is not the choice but
    what happened between their turns (on the Zen 3 VM, 2026-12-03 18:49: auto on C at 80 %
    of C, below it in each of the 5 rounds; on the Zen 4 VM, 10 alternating rounds of both
    put auto at 0.78-1.58x of C, median 1.03x).  Said so, for whoever reads the NOT met."""
    if t.section != "auto" or not mine.get("auto_backend"):
        return ""
    others = [r for r in ours if r["system"] != AUTO and r.get("samples_per_s")]
    if not others:
        return ""
    fastest = max(others, key=lambda r: r["samples_per_s"])["system"]
    if fastest != f"fastmlp[{mine['auto_backend']}]":
        return ""
    return (f"; auto trained on {mine['auto_backend']}, the backend fastest at the median: "
            "the same code, so the gap is not in the choice but between their turns")


def _out_of_reach(t, peer, results):
    """Why a target that is not met may be out of every system's reach on this machine, for
    whoever sets the targets: a ratio to a peer that would take more than the sgemm peak, or
    a share of the bandwidth that no system measured (torch's included) reached, with the
    cap that the update's reads put on it where that cap is below the target."""
    if t.section == "training" and not t.is_share and peer is not None:
        frac = peak_share(peer)
        if frac and t.at_least * frac > 1:
            return (f"; {t.at_least:g}x {t.versus} would take {t.at_least * frac:.0%} of the "
                    f"sgemm peak ({t.versus} ran at {frac:.0%})")
    if t.section == "optimizers" and t.versus == BANDWIDTH:
        rows = [r for r in (results.get("optimizers") or {}).get("rows", [])
                if r.get("optimizer") == t.subject
                and r.get("frac_bandwidth_alongside") is not None]
        if rows:
            best = max(rows, key=lambda r: r["frac_bandwidth_alongside"])
            if best["frac_bandwidth_alongside"] < t.at_least:
                lim = next((r for r in rows if r.get("frac_read_bound") is not None), None)
                cap = ""
                if lim is not None and lim["frac_read_bound"] < t.at_least:
                    cap = (f"; even with free writes it would reach at most "
                           f"{_fmt(t, lim['frac_read_bound'])} here (the same arrays read alone: "
                           f"{lim['read_gbs_alongside']:.1f} GB/s)")
                return (f"; no system measured reached it (best: {best['system']} "
                        f"{_fmt(t, best['frac_bandwidth_alongside'])}){cap}")
    return ""


def evaluate_targets(results, targets=TARGETS):
    """Judge every target; the rows are also stored in results["targets"]."""
    out = [judge(t, results) for t in targets]
    results["targets"] = out
    return out
