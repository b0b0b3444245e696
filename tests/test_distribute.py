"""Under tf.distribute the losses are scaled per replica: 2 replicas make the same update as 1 device."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
def test_two_replicas_make_the_same_update_as_one_device_in_every_stage():
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "replica_check.py"), "hint", "kd", "ce"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    for stage, result in report.items():
        assert result["max_weight_change"] > 1e-3, stage  # the step really moved the weights
        assert result["max_weight_difference"] < 1e-5, (stage, result)
        for key, value in result["single_logs"].items():
            assert value == pytest.approx(result["mirrored_logs"][key], rel=1e-5), (stage, key)


@pytest.mark.slow
@pytest.mark.parametrize("examples,batch_size", [(15, 15), (31, 16)])
def test_two_replicas_match_one_device_on_an_odd_batch_and_a_last_partial_batch(examples, batch_size):
    # 15 splits 8 + 7 over the replicas; 31 in batches of 16 ends with a partial batch of 15. Averaging each
    # replica's loss over its own size x 2 (dividing by 16 and 14) moved the weights apart by 4e-3 to 3e-2.
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "replica_check.py"), f"--examples={examples}",
         f"--batch_size={batch_size}", "hint", "kd", "ce"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    for stage, result in report.items():
        assert result["max_weight_change"] > 1e-2, stage
        assert result["max_weight_difference"] < 1e-5, (stage, result)
        assert result["max_weight_difference"] < 1e-6 * max(1.0, result["max_weight_change"]), (stage, result)
        for key, value in result["single_logs"].items():
            assert value == pytest.approx(result["mirrored_logs"][key], rel=1e-5), (stage, key)
