"""The benchmark grid and, per mode, its sizes and time budgets.

Only the full mode measures the grid at the sizes the targets are stated for; ``--quick`` and
``--tiny`` are for trying the harness and never mark a target met (targets.py).
"""

GRID = (
    ((5, 32, 32, 1), 256), ((5, 32, 32, 1), 4096),
    ((5, 128, 128, 128, 1), 256), ((5, 128, 128, 128, 1), 1024),
    ((5, 128, 128, 128, 1), 4096),
    ((5, 512, 512, 1), 256), ((5, 512, 512, 1), 4096),
)

FULL_MODE = "full"

# Per mode: sizes and budgets.  Each system first runs `warmup` epochs of min_batches
# batches (JIT compilation, caches; the last one gives its rate), then `rounds` x `epochs`
# timed epochs (the systems take turns round by round) of a number of rows chosen from that
# rate so that one epoch takes about epoch_s seconds (at least min_batches batches, and
# min_rows rows where that costs at most 4 x epoch_s; at most max_rows rows).
# The full run takes 5 rounds of 2 epochs rather than 3 of 3: a target's ratio to another
# system is the median of the per-round ratios (targets.py), and 3 rounds left it to the
# middle one.
# opt_reps: interleaved rounds of the optimizer section (one step of every system and one
# pass of each streaming kernel per round).  infer_reps: interleaved rounds of the inference
# section (one predict_proba of infer_rows rows per system and round; 5 in the full run, as
# for training, for a median of the per-round ratios to torch).  activation_config: the
# network of the activations section (activations.py), timed as the training grid but with
# activation_epochs epochs per round (six activations, two systems each).  peak_probe_s:
# seconds of each timing of the sgemm peak between training rounds (the share of the peak
# judged is that of the peak of the same rounds: training.time_in_rounds).
MODES = {
    "tiny": dict(configs=(((5, 16, 16, 1), 64),), sgemm_square=256,
                 sgemm_tall=((512, 64, 64),), stream_n=1 << 20, min_time=0.02,
                 epochs=2, rounds=1, warmup=2, epoch_s=0.02, min_batches=2, min_rows=128,
                 max_rows=1024,
                 check_steps=3, opt_n=10 ** 5, opt_reps=3, infer_rows=20_000,
                 infer_rows_slow=20_000, infer_reps=1, infer_arch=(5, 16, 16, 1),
                 activation_config=((5, 16, 16, 1), 64), activation_epochs=2,
                 compile=False, compile_timeout=60, peak_probe_s=0.005),
    "quick": dict(configs=GRID, sgemm_square=1024,
                  sgemm_tall=((4096, 512, 512), (512, 4096, 512), (1024, 128, 128)),
                  stream_n=40 << 20, min_time=0.2,
                  epochs=3, rounds=2, warmup=2, epoch_s=0.05, min_batches=2, min_rows=4096,
                  max_rows=1 << 18,
                  check_steps=5, opt_n=10 ** 7, opt_reps=6, infer_rows=2_000_000,
                  infer_rows_slow=1_000_000, infer_reps=2, infer_arch=(5, 64, 64, 1),
                  activation_config=((5, 64, 64, 1), 256), activation_epochs=1,
                  compile=False, compile_timeout=100, peak_probe_s=0.05),
    FULL_MODE: dict(configs=GRID, sgemm_square=2048,
                    sgemm_tall=((4096, 512, 512), (512, 4096, 512), (4096, 128, 128),
                                (1024, 128, 128), (256, 512, 512)),
                    stream_n=80 << 20, min_time=1.0,
                    epochs=2, rounds=5, warmup=2, epoch_s=1.0, min_batches=16,
                    min_rows=32768, max_rows=1 << 21,
                    check_steps=5, opt_n=10 ** 7, opt_reps=15, infer_rows=10_000_000,
                    infer_rows_slow=2_000_000, infer_reps=5, infer_arch=(5, 64, 64, 1),
                    activation_config=((5, 64, 64, 1), 256), activation_epochs=1,
                    compile=True, compile_timeout=900, peak_probe_s=0.25),
}
