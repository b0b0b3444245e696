"""The one interleaved timer: runs, report latency, LiteRT latency and the benchmark all time with it.

Candidates are timed round-robin, the starting candidate rotating each round, so that load from other processes
hits all of them alike; each sample is `calls_per_sample` calls and the reported time is the median sample (the
minimum is kept too: other processes only ever add time). Only ratios inside one call mean anything on a shared
machine.
"""

import dataclasses
import time
from typing import Callable

import numpy as np


@dataclasses.dataclass
class Candidate:
    """One thing to time.

    Attributes:
        name: unique key, e.g. "kd/xla_on".
        run: one unit of work (a step call, or `pipeline_batches` batches), returning when its results are on the
            host.
        images_per_call: images one `run()` processes.
        calls_per_sample: `run()` calls per timed sample.
        info: extra fields copied into the result (step, xla, kind).
    """

    name: str
    run: Callable[[], None]
    images_per_call: int
    calls_per_sample: int = 1
    info: dict = dataclasses.field(default_factory=dict)


def time_interleaved(candidates, rounds, warmup):
    """Times `candidates` round-robin after warm-up; returns {name: result dict}.

    Each candidate's first call is timed on its own (`first_call_s`: tracing plus XLA compilation); if it raises,
    the candidate is dropped and its result carries the `error` (type and last line) and `error_detail`. Then
    `warmup` untimed calls each, then `rounds` rounds in which every candidate takes one sample of
    `calls_per_sample` calls; the first candidate of a round rotates, so none always follows the same neighbour.

    Result fields: `seconds_per_call` (median of the samples), `min_s`, `max_s`, `samples_s` (seconds per call, in
    round order), `images_per_second`, `first_call_s`, `error` (None), plus the candidate's `info`; and the same in
    process CPU time (all threads, `time.process_time`): `cpu_samples_s`, `cpu_seconds_per_call`. CPU time counts
    the work done rather than the time waited for a core, so it hardly moves when other processes load the
    machine; wall time is what the throughput is, and what the targets use.
    """
    results, alive = {}, []
    for candidate in candidates:
        result = {**candidate.info, "images_per_call": candidate.images_per_call, "error": None}
        start = time.perf_counter()
        try:
            candidate.run()
        except Exception as error:  # An XLA-unsupported op or similar: report it, keep benchmarking the rest.
            # TF's traced-code errors start with "in user code:" and end with the actual error: keep the last line.
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            result.update(error=f"{type(error).__name__}: {lines[-1] if lines else ''}"[:300],
                          error_detail=str(error)[-3000:], first_call_s=None, seconds_per_call=None,
                          images_per_second=None, samples_s=[], min_s=None, max_s=None, cpu_samples_s=[],
                          cpu_seconds_per_call=None)
            results[candidate.name] = result
            continue
        result["first_call_s"] = time.perf_counter() - start
        for _ in range(warmup):
            candidate.run()
        results[candidate.name] = result
        alive.append(candidate)
    samples = {c.name: [] for c in alive}
    cpu_samples = {c.name: [] for c in alive}
    for r in range(rounds):
        shift = r % len(alive) if alive else 0
        for candidate in alive[shift:] + alive[:shift]:
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(candidate.calls_per_sample):
                candidate.run()
            samples[candidate.name].append((time.perf_counter() - start) / candidate.calls_per_sample)
            cpu_samples[candidate.name].append((time.process_time() - cpu_start) / candidate.calls_per_sample)
    for candidate in alive:
        values = samples[candidate.name]
        median = float(np.median(values))
        results[candidate.name].update(
            seconds_per_call=median, min_s=float(np.min(values)), max_s=float(np.max(values)),
            samples_s=[float(v) for v in values], images_per_second=candidate.images_per_call / median,
            cpu_samples_s=[float(v) for v in cpu_samples[candidate.name]],
            cpu_seconds_per_call=float(np.median(cpu_samples[candidate.name])),
        )
    return results
