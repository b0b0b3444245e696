"""The printed report of a benchmark run: steps, targets, XLA, teacher caching, roofline, serving latency; or the
real-size section (`scripts/benchmark.py --real_size`)."""

from fitnets_tf.harness.tables import text_table


def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def _verdict(passed):
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def format_report(report):
    """The printed tables: steps, targets, XLA, teacher caching, roofline, serving latency (SavedModel, LiteRT); and
    the real-size section when the report has one (`scripts/benchmark.py --real_size`)."""
    lines = []
    if "measurements" in report:
        lines += [*_steps_lines(report), *_target_lines(report), *_xla_lines(report),
                  *roofline_lines(report.get("roofline")), *_serving_lines(report)]
    if report.get("real_size"):
        section = report["real_size"]
        lines += [*load_warning(report["environment"]), *real_size_lines(section),
                  *roofline_lines(section.get("roofline"))]
    return "\n".join(lines)


def load_warning(env):
    """A warning, as printed lines, when the load average exceeded the core count during the run; else []."""
    load = max((env.get("load_average_at_start") or [0])[0], (env.get("load_average_at_end") or [0])[0])
    if env.get("cpu_count") and load > env["cpu_count"]:
        return [f"WARNING: load average {load:.1f} on {env['cpu_count']} cores during the run: other processes "
                "shared the CPU, wall-clock ratios are noisy (compare the CPU-time ratios).", ""]
    return []


def _steps_lines(report):
    """The step timings, the load warning and the input pipeline."""
    measurements = report["measurements"]
    rows = []
    for name, r in measurements.items():
        if name == "input_pipeline":
            continue
        spread = (f"{1e3 * r['min_s']:.1f}-{1e3 * r['max_s']:.1f}" if r.get("min_s") is not None else "-")
        rows.append([name, _fmt(r["seconds_per_call"] and 1e3 * r["seconds_per_call"], ".1f"), spread,
                     _fmt(r["images_per_second"], ",.0f"), _fmt(r["first_call_s"], ".2f"),
                     r["error"] or ""])
    cfg = report["config"]
    out = [*load_warning(report["environment"]),
           f"Steps: {cfg['student']} (student) / {cfg['teacher']} (teacher), batch {cfg['batch_size']}, "
           f"{cfg['mixed_precision']}; median of {cfg['rounds']} interleaved rounds",
           text_table(["candidate", "ms/call", "min-max ms", "images/s", "first call s", "error"], rows), ""]
    pipe = measurements.get("input_pipeline", {})
    if pipe.get("images_per_second"):
        out += [f"Input pipeline alone ({pipe['data']}, {pipe['examples']} examples, crop padding "
                f"{pipe['crop_padding']}, flip {pipe['flip']}): {pipe['images_per_second']:,.0f} images/s steady "
                f"state (median of {len(pipe['samples_s'])} x {pipe['batches_per_sample']} batches; "
                f"min-max {pipe['batch_size'] * pipe['batches_per_sample'] / pipe['max_s']:,.0f}-"
                f"{pipe['batch_size'] * pipe['batches_per_sample'] / pipe['min_s']:,.0f}); first epoch "
                f"(preprocess + cache) {pipe['first_epoch_images_per_second']:,.0f} images/s", ""]
    return out


def _target_lines(report):
    """The targets, and what kd_auto ran."""
    out = []
    trows = []
    for name, target in report["targets"].items():
        if name == "input_pipeline":
            trows.append([name, f"vs {target['fastest_training_step']}", _fmt(target["ratio"], ".2f"), "-", "-", "-",
                          f">= {target['limit']:g}", _verdict(target["passed"])])
            continue
        if name == "auto_vs_keras_distillation":
            trows.append([name, f"{target['ours']} vs {target['keras']}", _fmt(target["ratio"], ".3f"),
                          _fmt(target.get("ratio_of_medians"), ".3f"), _fmt(target.get("ratio_of_minima"), ".3f"),
                          _fmt(target.get("ratio_cpu"), ".3f"), f">= {target['limit']:g}",
                          _verdict(target["passed"])])
            continue
        sign = ">=" if name == "vs_keras_distillation" else "<="
        for key in ("xla_off", "xla_on"):
            if key in target:
                t = target[key]
                trows.append([name, key, _fmt(t["ratio"], ".3f"), _fmt(t["ratio_of_medians"], ".3f"),
                              _fmt(t["ratio_of_minima"], ".3f"), _fmt(t["ratio_cpu"], ".3f"),
                              f"{sign} {t['limit']:g}", _verdict(t["passed"])])
    out += ["Targets (decided by the paired wall-time ratio: median over rounds of the same round's ratio)",
            text_table(["target", "setting", "paired ratio", "of medians", "of minima", "CPU-time", "limit",
                        "result"], trows)]
    auto = report["targets"].get("auto_vs_keras_distillation") or {}
    if auto.get("xla_settings"):
        settings = auto["xla_settings"]
        out += [f"kd_auto (stage 2 with teacher_precision=auto, XLA auto): teacher in {auto['teacher_precision']}, "
                f"XLA for the student's part {'on' if settings['student'] else 'off'}, for the teacher's forward "
                f"{'on' if settings['teacher'] else 'off'}"]
    out += [""]
    return out


def _xla_lines(report):
    """XLA on/off per step, and teacher-output caching."""
    out = []
    xrows = [[step, _fmt(e["xla_off_s"] and 1e3 * e["xla_off_s"], ".1f"),
              _fmt(e["xla_on_s"] and 1e3 * e["xla_on_s"], ".1f"), e["faster"] or "-", _fmt(e["xla_speedup"], ".2f"),
              _fmt(e["xla_speedup_cpu"], ".2f")]
             for step, e in report["xla"].items()]
    out += ["XLA (jit_compile) per step",
            text_table(["step", "off ms", "on ms", "faster", "off/on (paired)", "CPU-time off/on"], xrows), ""]
    crows = [[name, _fmt(value, ".2f") + "x" if value is not None else "-"]
             for name, value in report["teacher_caching_speedup"].items()]
    out += ["Teacher-output caching: t(step) / t(step fed cached teacher outputs), paired per round",
            text_table(["step", "speed-up"], crows), ""]
    return out


def _serving_lines(report):
    """Serving latency through the SavedModel and through LiteRT, and the LiteRT targets."""
    out = []
    batch_sizes = report["inference"]["batch_sizes"]
    irows = []
    for r in report["inference"]["models"]:
        irows.append([r["model"], f"{r['parameters']:,}", f"{r['multiplications'] / 1e6:.1f}M",
                      *[_fmt(r["latency_ms_per_image"][str(b)], ".3f") for b in batch_sizes],
                      *[_fmt(r["speedup_vs_teacher"][str(b)], ".2f") + "x" for b in batch_sizes],
                      f"{r['multiplication_ratio']:.2f}x"])
    out += ["Serving latency (exported SavedModel, uint8 in; ms per image)",
            text_table(["model", "params", "mults", *[f"ms/img bs{b}" for b in batch_sizes],
                        *[f"speed-up bs{b}" for b in batch_sizes], "mult ratio"], irows)]
    lrows = []
    for r in report["inference"]["models"]:
        saved = r["speedup_vs_teacher"].get("1")
        for fmt, e in (r.get("litert") or {}).items():
            lrows.append([r["model"], fmt, f"{e['size_bytes'] / 1024:,.0f}", _fmt(e["latency_ms_per_image"], ".3f"),
                          _fmt(e["min_latency_ms_per_image"], ".3f"),
                          _fmt(e["speedup_vs_teacher"], ".2f") + "x", f"{r['multiplication_ratio']:.2f}x",
                          _fmt(e["speedup_fraction_of_multiplication_ratio"], ".2f"),
                          _fmt(saved, ".2f") + "x", e["error"] or ""])
    if lrows:
        out += ["", "Serving latency on LiteRT (.tflite, uint8 in, batch 1, 1 thread; speed-up vs the teacher's file "
                "of the same format, paired per round)",
                text_table(["model", "format", "KB", "ms/img", "fastest ms/img", "speed-up", "mult ratio",
                            "speed-up/mult ratio", "SavedModel speed-up bs1", "error"], lrows)]
    targets = report.get("litert_targets")
    if targets:
        t1, t2 = targets["fitnet1_int8_ms_per_image"], targets["fitnet1_float32_speedup_over_mult_ratio"]
        out += ["", "LiteRT targets",
                text_table(["target", "value", "limit", "result"],
                           [["FitNet 1 int8 ms/image (bs1, 1 thread)", _fmt(t1["value"], ".3f"),
                             f"<= {t1['limit']:g}", _verdict(t1["passed"])],
                            ["FitNet 1 vs teacher, float32: speed-up / mult ratio", _fmt(t2["value"], ".2f"),
                             f">= {t2['limit']:g}", _verdict(t2["passed"])]])]
    return out


def real_size_lines(section):
    """The printed real-size section: the pipeline and the steps, then the targets."""
    fmt, table, verdict = _fmt, text_table, _verdict
    data, models, cfg = section["data"], section["models"], section["config"]
    rows = []
    for name, r in (("input_pipeline", section["input_pipeline"]), *section["measurements"].items()):
        if name != "input_pipeline" and "step" not in r:
            continue  # the roofline's matmuls: in its own table
        per_call = r["seconds_per_call"]
        spread = (f"{1e3 * r['min_s']:.1f}-{1e3 * r['max_s']:.1f}" if r.get("min_s") is not None else "-")
        cpu = section["cpu_seconds_per_image"].get(name)
        rows.append([name, _xla_words(r.get("xla")), fmt(per_call and 1e3 * per_call, ".1f"), spread,
                     r["images_per_call"], fmt(r["images_per_second"], ",.1f"), fmt(cpu and 1e3 * cpu, ".2f"),
                     fmt(r.get("first_call_s"), ".2f"), r["error"] or ""])
    folder = data["folder"] or "a temporary folder"

    def model(role):
        m = models[role]
        nested = f" [{', '.join(m['nested_models'])}]" if m.get("nested_models") else ""
        return f"{m['architecture']}{nested} ({role}, {m['multiplications'] / 1e6:,.0f}M mults)"

    out = [f"Real size: {model('teacher')} / {model('student')}, {'x'.join(map(str, data['image_shape']))}, "
           f"batch {data['batch_size']}, {section['policy']}, teacher in {section['teacher_precision']}, "
           f"jit_compile={cfg['jit_compile']}, teacher_jit_compile={cfg['teacher_jit_compile']} (\"<step>/run\": as a "
           f"run compiles it); median of {cfg['rounds']} rounds",
           f"Data: {data['train_examples']} training images of {folder} "
           f"({'generated' if data['generated'] else 'given'}), JPEG decode + resize + {data['augmentation']['kind']}"
           f"{' + flip' if data['augmentation']['flip'] else ''} + '{data['preprocessing']}' preprocessing; the "
           "pipeline alone, back to back, after its first epoch "
           f"({section['input_pipeline']['first_epoch_images_per_second']:,.1f} images/s); the steps interleaved on "
           "one batch",
           table(["candidate", "XLA", "ms/call", "min-max ms", "images/call", "images/s", "CPU ms/image",
                  "first call s", "error"], rows), ""]
    trows = []
    for name, sign in (("pipeline_vs_stage2", ">="), ("vs_keras_distillation", ">="), ("stage2_overhead", "<=")):
        t = section["targets"][name]
        trows.append([name, fmt(t["ratio"], ".3f"), fmt(t.get("ratio_of_medians"), ".3f"),
                      fmt(t.get("ratio_cpu"), ".3f"), f"{sign} {t['limit']:g}", verdict(t["passed"])])
    share = section["pipeline_share_of_cpu"]
    out += ["Real-size targets (pipeline_vs_stage2: ratio of medians, measured apart; the others paired per round)",
            table(["target", "ratio", "of medians", "CPU-time", "limit", "result"], trows),
            f"The input pipeline is {fmt(share and 100 * share, '.0f')}% of the CPU work per training image "
            "(pipeline / (pipeline + stage-2 step)): run together on shared cores, that part comes out of the step's "
            "time."]
    levers = section.get("levers") or {}
    if levers:
        out += ["XLA levers: t(lever) / t(the same step at the run's settings), paired per round (> 1: the run's "
                "settings are faster)",
                table(["lever", "XLA", "ratio", "of medians", "CPU-time"],
                      [[name, _xla_words(lever["xla"]), fmt(lever["ratio"], ".3f"),
                        fmt(lever["ratio_of_medians"], ".3f"), fmt(lever["ratio_cpu"], ".3f")]
                       for name, lever in levers.items()])]
    return out + [""]


def _xla_words(xla):
    """A candidate's XLA settings in a few words: "on"/"off", or "student on, teacher off"."""
    if xla is None:
        return "-"
    if isinstance(xla, bool):
        return "on" if xla else "off"
    parts = [f"{part} {'on' if on else 'off'}" for part, on in xla.items() if on is not None]
    return ", ".join(parts) if parts else "-"


def _percent(value):
    return "-" if value is None else f"{100 * value:.0f}%"


def roofline_lines(section):
    """The roofline (`benchmarking.roofline`): the CPU and its measured peaks, each step's MACs, GMAC/s and share
    of peak, stage 2's floor, and the issue's targets (informational). [] without a section."""
    if not section:
        return []
    cpu = section["cpu"]
    present = [flag for flag, there in cpu["flags"].items() if there]
    absent = [flag for flag, there in cpu["flags"].items() if not there]
    peaks = []
    for precision, peak in section["peaks"].items():
        rate = "-" if peak["gmac_per_second"] is None else f"{peak['gmac_per_second']:.1f} GMAC/s"
        peaks.append(f"{precision} {rate}" + (f" ({peak['error']})" if peak["error"] else ""))
    size = next(iter(section["peaks"].values()))["size"]
    rows = []
    for name, s in section["steps"].items():
        rows.append([name, s["work"], "/".join(s["precisions"]), f"{s['macs_per_call'] / 1e6:,.1f}",
                     _fmt(s["seconds_per_call"] and 1e3 * s["seconds_per_call"], ".1f"),
                     _fmt(s["gmac_per_second"], ".1f"), _fmt(s["floor_s"] and 1e3 * s["floor_s"], ".2f"),
                     _percent(s["share_of_peak"]), _percent(s["share_of_peak_fastest"])])
    out = [f"Roofline: {cpu['model'] or 'unknown CPU'}, {cpu['logical_cpus']} logical CPUs "
           f"({cpu['usable_cpus']} usable); flags {' '.join(present) or '-'}; without {' '.join(absent) or '-'}",
           f"Peak measured in this run (tf.linalg.matmul {size}x{size} under tf.function, the best of "
           f"{max(len(p['samples_s']) for p in section['peaks'].values())} calls interleaved with the steps): "
           f"{', '.join(peaks)}",
           "MACs per call: S student, T teacher, G student to its guided layer + regressor, H teacher to its hint "
           "layer (forward MACs per image x images); a trained part counts 3x (backward = 2x forward)",
           text_table(["candidate", "work", "precision", "MMAC/call", "ms/call", "GMAC/s", "floor ms",
                       "share of peak", "fastest sample"], rows)]
    stage2 = section.get("stage2")
    if stage2:
        out += [f"Stage 2 ({stage2['candidate']}): floor {_fmt(stage2['floor_s'] and 1e3 * stage2['floor_s'], '.2f')}"
                f" ms = teacher forward {stage2['teacher_macs'] / 1e6:,.1f} MMAC at the {stage2['teacher_precision']} "
                f"peak + student step {stage2['student_macs'] / 1e6:,.1f} MMAC at the {stage2['student_precision']} "
                f"peak; measured {_fmt(stage2['measured_s'] and 1e3 * stage2['measured_s'], '.2f')} ms "
                f"({_percent(stage2['share_of_peak'])} of peak)"]
    trows = [[t["description"], t["candidate"] or "-", _percent(t["share"]), _percent(t["share_fastest"]),
              f">= {t['limit']:.0%}", _verdict(t["passed"])] for t in section["targets"].values()]
    out += ["Roofline targets (issue 22; informational, not asserted; the better XLA setting)",
            text_table(["target", "candidate", "share", "fastest sample", "limit", "result"], trows), ""]
    return out
