"""Which CPU this is: the identity that tuned choices and benchmark results are filed under.

A hypervisor often reports a bare model name for different generations.  On 2026-12-02 a
VM reported "AMD EPYC" for an AMD Zen 3 part (x86 family 25, model 1, AVX2 and no
AVX-512), the same name as the Zen 4 VM (AVX-512 with BF16) whose results were already in
``benchmarks/results/amd-epyc/``.  Filed under the name alone, the two CPUs would have
shared one results directory and one tuning cache: one CPU's choice of backend applied to
the other, and one CPU's run taken as the other's "latest".  The x86 family and model
numbers tell such CPUs apart, so the slug carries them when ``/proc/cpuinfo`` gives them:
'AMD EPYC', family 25, model 1 -> 'amd-epyc-family25-model1'.

Results recorded before the family and model were recorded (2026-12-02 and earlier) keep
the slug of the name alone ('amd-epyc', 'intel-xeon-processor'): ``cpu_slug`` of what a
result records is the directory it lives in.
"""

import functools
import platform
import re

# Flags worth recording with a result: the SIMD width the kernels can use (all avx*/amx* are
# kept), and, called out, the bfloat16 / matrix units (AVX512-BF16, AMX) that a later
# opt-in bfloat16 path would use.
BF16_AMX_FLAGS = ("avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def _parse_cpuinfo(text):
    """The fields of the first processor block of a /proc/cpuinfo text (keys lower case)."""
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
    return fields


@functools.lru_cache(maxsize=1)
def _read_cpuinfo():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def cpuinfo_fields():
    """The fields of the first processor block of /proc/cpuinfo ({} where there is none)."""
    return _parse_cpuinfo(_read_cpuinfo())


def _int_or_none(text):
    """25 -> 25, '25' -> 25, '0x11' -> 17, '' or None -> None."""
    if isinstance(text, int):
        return text
    text = str(text or "").strip()
    for base in (10, 16 if text.lower().startswith("0x") else 10):
        try:
            return int(text, base)
        except ValueError:
            pass
    return None


def cpu_slug(model, x86_family=None, x86_model=None):
    """A directory name for a CPU: its model name in lower case with (R)/(TM), the word CPU
    and the clock ("@ 2.90GHz") dropped, everything else joined by '-', then the x86 family
    and model numbers when known.  'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz' ->
    'intel-xeon-platinum-8375c'; 'AMD EPYC', 25, 1 -> 'amd-epyc-family25-model1'."""
    s = re.sub(r"\((r|tm)\)", " ", str(model or "").lower())
    s = re.sub(r"@.*$", " ", s)
    s = re.sub(r"\bcpu\b", " ", s)
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-") or "unknown-cpu"
    family, number = _int_or_none(x86_family), _int_or_none(x86_model)
    if family is not None and number is not None:
        s += f"-family{family}-model{number}"
    return s


def slug_of_record(cpu):
    """The slug of a CPU as a saved result records it (meta.cpu: model, x86_family,
    x86_model; results recorded before 2026-12-03 hold the model name only)."""
    cpu = cpu or {}
    return cpu_slug(cpu.get("model"), cpu.get("x86_family"), cpu.get("x86_model"))


@functools.lru_cache(maxsize=1)
def cpu_identity():
    """This CPU: model name, vendor, x86 family and model numbers (None off x86 Linux),
    directory slug, SIMD flags and bfloat16 / AMX units."""
    fields = cpuinfo_fields()
    model = (fields.get("model name") or fields.get("hardware") or fields.get("cpu model")
             or platform.processor() or platform.machine() or "unknown-cpu")
    family, number = _int_or_none(fields.get("cpu family")), _int_or_none(fields.get("model"))
    flags = set(fields.get("flags", "").split())
    simd = sorted(x for x in flags if x in ("avx", "avx2", "fma", "f16c", "avx_vnni")
                  or x.startswith("avx512") or x.startswith("amx"))
    return {"model": model, "vendor": fields.get("vendor_id"), "x86_family": family,
            "x86_model": number, "slug": cpu_slug(model, family, number), "simd": simd,
            "bf16_amx": {f: f in flags for f in BF16_AMX_FLAGS}}
