"""Every ```python block of README.md runs as printed: each in a fresh Python process, in an
empty directory, against the fastmlp beside this README, and must exit with status 0.

A block that reads the real SDSS files names them as ``../shared/data/<file>`` (relative to the
repository root); it runs where that path leads to the data directory of tests/conftest.py,
and is skipped, naming the file, when that file is absent. A block that cannot run here by
design (it needs an MPI launcher, a cluster, a file the reader supplies) carries the comment
``<!-- not run: <reason> -->`` on the last non-blank line before its fence: it is skipped
with that reason, but must still compile."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

NOT_RUN = re.compile(r"^<!--\s*not run:\s*(\S.*?)\s*-->$")
DATA_PATH = re.compile(r"\.\./shared/data/([\w.+-]+)")
# A warning raised at the block's own line (file "<string>") or inside fastmlp: the example
# runs but tells its reader something is off (a schedule longer than the run, a divergence).
WARNING_LINE = re.compile(r"^(.*):\d+: (\w*Warning): .*$", re.M)
# Extras a block may import (pyproject's optional dependencies): without one the block is
# skipped, as the suite's other tests skip; any other missing module fails the block.
OPTIONAL_MODULES = {"pandas", "sklearn", "matplotlib", "onnx", "onnxruntime", "pyarrow",
                    "astropy", "dask", "distributed", "mpi4py", "torch"}


def readme_blocks(text):
    """The ```python blocks of a Markdown text as (first line number, code, not-run reason or
    None); the reason comes from a ``<!-- not run: ... -->`` line just before the fence."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() != "```python":
            i += 1
            continue
        before = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
        marker = NOT_RUN.match(before)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"README.md line {i + 1}: a ```python block is never closed"
        blocks.append((i + 2, "\n".join(lines[i + 1:end]) + "\n",
                       marker.group(1) if marker else None))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_readme_has_python_blocks_and_few_exceptions():
    assert len(BLOCKS) >= 3, f"README.md: only {len(BLOCKS)} ```python blocks found"
    skipped = [line for line, _, reason in BLOCKS if reason is not None]
    assert len(skipped) <= len(BLOCKS) // 3, f"too many blocks marked 'not run': lines {skipped}"


def test_every_not_run_marker_has_a_reason_and_a_block():
    lines = README.read_text(encoding="utf-8").splitlines()
    markers = [n for n, s in enumerate(lines) if s.strip().startswith("<!-- not run")]
    marked = {line - 2 for line, _, reason in BLOCKS if reason}
    for n in markers:
        following = next((j for j in range(n + 1, len(lines)) if lines[j].strip()), None)
        assert following in marked, (
            f"README.md line {n + 1}: a 'not run' marker must give a reason "
            f"('<!-- not run: why -->') and stand just before a ```python block")


def _needs(code, tmp_path):
    """Skip for an absent SDSS file or optional extra; lay out ../shared/data if needed."""
    for name in sorted(set(DATA_PATH.findall(code))):
        if not (DATA_DIR / name).exists():
            pytest.skip(f"real SDSS data file {DATA_DIR / name} is absent "
                        "(set FASTMLP_DATA_DIR)")
    if DATA_PATH.search(code):
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(DATA_DIR.resolve(), target_is_directory=True)
    imported = re.findall(r"^\s*(?:import|from)\s+(\w+)", code, re.M)
    for module in sorted(set(imported) & OPTIONAL_MODULES):
        pytest.importorskip(module)


@pytest.mark.parametrize("line,code,reason", BLOCKS, ids=[f"line{b[0]}" for b in BLOCKS])
def test_readme_python_block_runs(line, code, reason, tmp_path):
    compile(code, f"README.md block at line {line}", "exec")
    if reason is not None:
        pytest.skip(f"README.md line {line}: not run: {reason}")
    _needs(code, tmp_path)
    work = tmp_path / "run"
    work.mkdir()
    path = [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = dict(os.environ, FASTMLP_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(path))
    # Each block starts as a reader's script does: a fresh process, nothing imported.
    run = subprocess.run([sys.executable, "-c", code], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (
        f"README.md's python block at line {line} exited with status {run.returncode} "
        f"(its line k is line {line} + k - 1 of README.md; a block that cannot run here by "
        f"design takes '<!-- not run: reason -->' before its fence):\n{run.stderr[-3000:]}")
    warned = [m.group(0) for m in WARNING_LINE.finditer(run.stderr)
              if m.group(1) == "<string>" or m.group(1).startswith(str(ROOT / "fastmlp"))]
    assert not warned, f"README.md's python block at line {line} warns:\n" + "\n".join(warned)
