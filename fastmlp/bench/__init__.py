"""`fastmlp bench`: fastmlp side by side with PyTorch, scikit-learn and the machine's limits.

One process run measures and prints

1. the machine (machine.py): CPU model and flags (incl. AVX512-BF16 / AMX), float32 sgemm
   GFLOP/s with NumPy's BLAS (large square and the tall-skinny shapes an MLP uses),
   streaming memory bandwidth (copy / triad / update / update3, Numba parallel if
   available), BLAS kernel (threadpoolctl) and the OPENBLAS_* / *_NUM_THREADS variables;
2. training throughput (training.py, peers.py): samples/s, median over every timed epoch
   after warm-up, Adam, float32, the same thread count for everyone; the systems take turns
   in rounds.  fastmlp on every available backend and on ``auto``, PyTorch eager
   (torch.optim.Adam default and fused=True), torch.compile (compile.py, a subprocess with
   a time limit) and scikit-learn's MLPClassifier; every peer starts from fastmlp's initial
   weights, and the first steps' losses are checked to agree before any speed is reported;
3. optimizer-update throughput (optimizers.py) at 1e7 float32 parameters, in interleaved
   rounds with the streaming bandwidth measured in the same rounds, spread reported, and
   with a read of as many arrays as each update reads (the share it would reach with free
   writes);
4. inference throughput (inference.py) through ``predict_proba`` on a 10M-row catalog vs
   PyTorch eager under no_grad and scikit-learn.

The targets (targets.py) are a table of rows judged on full runs only.  Results go to
``<out>/<cpu-slug>/bench-<mode>-<UTC time>.{json,md,png}`` (output.py; report.py draws the
markdown and the chart).  Modes (modes.py): ``--quick`` (< 2 minutes), the full run
(< 30 minutes), ``--tiny`` (seconds; the smoke test).  torch, scikit-learn and matplotlib are
optional and imported lazily: ``import fastmlp.bench`` imports none of them.

Imports inside this package point down: run -> output -> report; run -> targets ->
optimizers / modes; training -> compile -> timing, peers -> common.  Nothing else in fastmlp
imports fastmlp.bench.
"""

from .run import build_parser, main, run  # noqa: F401

__all__ = ["main", "run", "build_parser"]
