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
