"""What a person benchmarking optimizers, schedules, lr sweeps and cross-validation runs
into: many small runs side by side, their tables and their figures."""

import numpy as np
import pytest

from fastmlp import cli


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["train", "cv"])
def test_full_batch_with_a_schedule_trains(capsys, command):
    # gradient descent with a cosine schedule: "full" was divided into the row count
    # before the data were loaded (TypeError); T defaults to one step per epoch
    code, out, err = run(capsys, command, "--n-samples", 600, "--batch-size", "full",
                         "--schedule", "cosine", "--epochs", 3,
                         *(["--k", 3] if command == "cv" else []))
    assert code == 0, err
    assert "error" not in err
    if command == "train":      # the run states its schedule: one cosine step per epoch
        assert "schedule cosine:T=3;" in out + err
