"""A 2-worker MultiWorkerMirroredStrategy run on 127.0.0.1 (two processes, TF_CONFIG): it completes, and only the
chief writes artifacts into the model_dir."""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--teacher_epochs=1", "--hint_epochs=1", "--kd_epochs=1", "--baselines=", "--latency_runs=1",
        "--batch_size=64", "--verbose=0", "--optimizer=adam", "--learning_rate=0.003"]


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_complete_a_digits_run_and_only_the_chief_writes(tmp_path):
    model_dir = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(scratch),
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "scripts", "run.py"), f"--model_dir={model_dir}",
             "--strategy=multi_worker", *TINY, "--litert_export=fitnet,float32"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outputs = [w.communicate(timeout=900) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    results = json.load(open(model_dir / "results.json"))
    assert results["replicas"] == 2
    assert {r["model"] for r in results["models"]} == {"teacher", "fitnet"}
    assert (model_dir / "export" / "saved_model.pb").exists() and (model_dir / "flags.cfg").exists()
    assert (model_dir / "litert" / "fitnet_float32.tflite").exists()  # the chief's LiteRT file
    # The non-chief worker wrote its checkpoints and reports into a scratch directory it removed afterwards.
    assert os.listdir(tmp_path / "tmp1") == []
