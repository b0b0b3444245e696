"""The interleaved timer shared by run reports, LiteRT measurements and the benchmark."""

import time

import numpy as np

from fitnets_tf.harness.timing import Candidate, time_interleaved


def test_interleaved_rounds_rotate_and_measure_each_candidate():
    order = []

    def sleeper(name, seconds):
        def run():
            order.append(name)
            time.sleep(seconds)
        return run

    candidates = [Candidate("fast", sleeper("fast", 0.002), 4), Candidate("slow", sleeper("slow", 0.02), 4,
                                                                          calls_per_sample=2)]
    results = time_interleaved(candidates, rounds=4, warmup=1)
    # first call and one warm-up each, then 4 rounds whose first candidate rotates (slow takes 2 calls a sample)
    assert order[:4] == ["fast", "fast", "slow", "slow"]
    rounds = order[4:]
    assert rounds == ["fast", "slow", "slow", "slow", "slow", "fast", "fast", "slow", "slow",
                      "slow", "slow", "fast"]
    slow, fast = results["slow"], results["fast"]
    assert len(slow["samples_s"]) == len(fast["samples_s"]) == 4
    assert slow["seconds_per_call"] >= 0.02 and fast["seconds_per_call"] >= 0.002  # sleep never returns early
    assert slow["seconds_per_call"] == np.median(slow["samples_s"])
    assert fast["images_per_second"] == 4 / fast["seconds_per_call"]
    assert slow["min_s"] <= slow["seconds_per_call"] <= slow["max_s"]


def test_a_failing_candidate_is_reported_and_the_rest_still_timed():
    def broken():
        raise ValueError("first line\nthe real reason")

    results = time_interleaved([Candidate("broken", broken, 1), Candidate("ok", lambda: None, 1)], rounds=2,
                               warmup=0)
    assert results["broken"]["error"] == "ValueError: the real reason"
    assert results["broken"]["seconds_per_call"] is None
    assert results["ok"]["error"] is None and len(results["ok"]["samples_s"]) == 2
