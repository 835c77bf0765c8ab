"""End-to-end events/s of the full job against its raw-TF ceiling and Vowpal Wabbit, same run.

    python bench/anchors.py                                   # lr, fm, deepfm; 1M events; every mode; PS on, off
    python bench/anchors.py --models lr --modes loopback --ps off
    python bench/anchors.py --models lr deepfm --modes loopback --ps off on --paths generator kafka-csv kafka-arrow

Per row (model x where the Python operators run x PS sync on/off), back to back under the same
load: (1) Vowpal Wabbit (``-b 20 --loss_function logistic``, its own parser, in a child process)
on the same events, written beforehand as VW text (bench/streams.py), only VW's run timed, its
fastest of three (each row's baselines start once the machine is quiet: ``quiet_wait_s``); (2) the
raw-TF ceiling (bench/raw_tf.py: the same model and batch size on the same events, featurized
beforehand, in this process); (3) the job (`flinkdl.runner.run`: generator → parse + hash → Arrow
IPC → TF worker → evaluation + sink, and with ``--ps on`` the sync with a local parameter server
on a free port): its stream throughput (first to last batch at the sink) and, sampled from
outside (bench/procs.py), the CPU µs per event (over the events between the sink's first and last
progress lines) and RSS of every process, and its time to first
prediction (``run()`` called → first batch at the sink: Flink and TF worker start-up included).
``--paths`` adds the same job reading the same events from Kafka (bench/anchor_kafka.py: csv
messages, one per event, or Arrow messages) with only the source switched, each also as a ratio
to the generator path of the same run. Prints Markdown tables: rates and ratios, CPU µs/event per
process, RSS per process; the Python stages' cost; issue 19's goals that the rows answer
(bench/anchor_goals.py); and a final JSON line with every row and goal.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))

from anchor_goals import goals, print_goals
from anchor_kafka import PATHS, broker_for, kafka_source
from end_to_end import report
from procs import ROLES, ProcessSampler, wait_quiet
from streams import MODEL_SETTINGS, featurize, raw_batches, write_vw

from flinkdl.devtools.net import free_port
from flinkdl.pipeline.job import WORKER_MODE_ENV

VW_ARGS = "-b 20 --loss_function logistic --quiet"
#: --modes: (job.python_execution_mode, PyFlink's _python_worker_execution_mode, meaning)
MODES = {
    "loopback": ("process", None, "all Python operators in the client process (PyFlink's default on a mini-cluster)"),
    "process": ("process", "process", "one Python harness process per operator chain (as on a cluster)"),
    "thread": ("thread", None, "Python inside the JVM (PemJa); needs the venv's site-packages on PYTHONPATH"),
}
_VW_CHILD = """
import resource, sys, time, vowpalwabbit
t, c = time.perf_counter(), time.process_time()
ws = vowpalwabbit.Workspace(sys.argv[1])
ws.finish()
print(time.perf_counter() - t, time.process_time() - c)
print([int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM")][0])
"""


def _vw_once(data: Path, events: int, extra: str = "") -> dict:
    """VW on its own text file, in a child process: wall ev/s, CPU µs/event, peak RSS."""
    out = subprocess.run([sys.executable, "-c", _VW_CHILD, f"-d {data} {VW_ARGS} {extra}"],
                         check=True, capture_output=True, text=True)
    wall, cpu, peak = (float(x) for x in out.stdout.split()[-3:])
    return {"rows_per_s": events / wall, "seconds": wall, "cpu_us_per_event": 1e6 * cpu / events,
            "rss": int(peak)}  # VmHWM of the child (ru_maxrss would count the parent's pages before exec)


def run_vw(data: Path, events: int, extra: str = "", repeats: int = 3) -> dict:
    """VW ``repeats`` times: its fastest run (one 1M-event run takes 1-4 s, and single runs varied 2x
    on a quiet machine: the fastest is VW's own speed, the others what else ran beside it; so the
    job's ratio to it is the conservative one), with every run's rate and the median's."""
    runs = sorted((_vw_once(data, events, extra) for _ in range(repeats)), key=lambda r: r["seconds"])
    return {**runs[0], "rows_per_s_runs": [round(r["rows_per_s"]) for r in runs],
            "rows_per_s_median": runs[len(runs) // 2]["rows_per_s"]}


_JOB_CHILD = """
import json, sys
from flinkdl.config.schema import JobConfig
from flinkdl.runner import run
cfg = JobConfig.model_validate_json(open(sys.argv[1]).read())
json.dump(run(cfg, int(sys.argv[2]), oracle=False), open(sys.argv[3], "w"))
"""


def run_job(cfg, events: int) -> dict:
    """The job in a child process (as `flinkdl run`: its RSS is the client's alone, not this benchmark's
    data and raw-TF model) under a process sampler; its summary plus per-process CPU µs/event and RSS,
    and the seconds from the start of the child to the first batch at the sink (``first_prediction_s``)."""
    run_dir = Path(cfg.job.run_dir)
    spec, out = run_dir.with_suffix(".json"), run_dir.with_suffix(".summary.json")
    spec.write_text(cfg.model_dump_json())
    with ProcessSampler() as sampler:
        started = time.time()
        child = subprocess.Popen([sys.executable, "-c", _JOB_CHILD, str(spec), str(events), str(out)])
        sampler.driver_pid = child.pid
        if child.wait():
            raise RuntimeError(f"the job failed (exit {child.returncode}): see its output above")
    job = json.loads(out.read_text())
    lines = [json.loads(x) for x in (Path(cfg.job.run_dir) / "metrics.jsonl").read_text().splitlines()]
    last = lines[-1]
    t0 = last["t"] - last["stream_s"]  # the sink's first batch
    job["first_prediction_s"] = t0 - started
    # CPU over the events between two progress lines: the stages before the sink run ahead of its
    # first batch (by a bundle or more), so "first batch → end" would charge their early work to no event
    first = next((m for m in lines if m["events_in"] and not m["final"]), None)
    if first is not None and first["events_in"] < last["events_in"]:
        job["cpu_us"] = sampler.per_event(first["t"], last["t"], last["events_in"] - first["events_in"])
    else:
        job["cpu_us"] = sampler.per_event(t0, last["t"], last["events_in"])
    job["rss"] = sampler.rss(t0 + last["stream_s"] / 2, last["t"])
    return job


def component_costs(cfg, batches: int = 60) -> dict[str, float]:
    """CPU µs per event of each Python stage, in this process, on the stream's first batches."""
    from flinkdl.exchange.channel import pack, unpack
    from flinkdl.exchange.schema import PREDICTION_SCHEMA, FeatureLayout
    from flinkdl.features.transform import Featurizer
    from flinkdl.pipeline.generate import RankHashes
    from flinkdl.sinks.run_log import RunLog
    from flinkdl.sources.generator import ClickStream

    size, stream = cfg.source.generator.batch_size, ClickStream.from_config(cfg.source.generator)
    fz = Featurizer(cfg.features)
    by_rank = RankHashes(stream, fz)  # as the job's generator path (BatchGenerator)
    schema, cost = FeatureLayout.from_config(cfg.features).schema(), dict.fromkeys(
        ["generate", "featurize+pack", "relay unpack", "evaluate+sink"], 0.0)
    progress = RunLog(cfg, cfg.source.generator.events)  # as the job: exact AUC on a bounded stream
    for i in range(batches):
        c = [time.process_time()]
        b, ranks = stream.batch_and_ranks(i, size)
        c.append(time.process_time())
        payload = pack(fz.featurize(b, i * size, by_rank.hashes(ranks, size)).batch)
        c.append(time.process_time())
        feats = unpack(payload, schema)
        c.append(time.process_time())
        preds = pa.record_batch([feats.column(0), pa.array(np.full(size, 0.3, np.float32)), feats.column(1),
                                 pa.array(np.zeros(size, np.int64))], schema=PREDICTION_SCHEMA)
        progress.update(size, unpack(pack(preds), PREDICTION_SCHEMA), b"")
        c.append(time.process_time())
        for k, name in enumerate(cost):
            cost[name] += c[k + 1] - c[k]
    progress.finish()
    return {k: 1e6 * v / (batches * size) for k, v in cost.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="jobs/click_stream.yaml")
    p.add_argument("--models", nargs="+", default=["lr", "fm", "deepfm"])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--ps", nargs="+", default=["on", "off"], choices=["on", "off"])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES),
                   help="where the Python operators run: " + "; ".join(f"{k}: {v[2]}" for k, v in MODES.items()))
    p.add_argument("--paths", nargs="+", default=["generator"], choices=list(PATHS),
                   help="the job's source (bench/anchor_kafka.py): the generator; Kafka csv, Arrow; read by Python")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args()
    if "thread" in args.modes:  # PemJa's interpreter in the JVM sees only PYTHONPATH, not the venv
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [os.environ.get("PYTHONPATH"), *site.getsitepackages()]))

    import tensorflow as tf
    from raw_tf import raw_tf_ceiling

    from flinkdl.config.loader import load_config
    from flinkdl.exchange.schema import FeatureLayout

    rows = []
    with tempfile.TemporaryDirectory() as tmp, broker_for(args.paths, Path(tmp) / "tansu.log") as brk:
        base = load_config(args.config, [*args.set, f"job.run_dir={tmp}/components"])
        raw = raw_batches(base, "drift", args.events)
        vw_file = Path(tmp) / "stream.vw"
        write_vw(base, raw, vw_file)
        stages = component_costs(base)
        print(json.dumps({"python_stages_cpu_us": stages}), flush=True)
        ids, dense, labels = featurize(base, raw)
        del raw
        for model, mode, ps in itertools.product(args.models, args.modes, args.ps):
            exec_mode, worker_mode, _ = MODES[mode]
            os.environ.pop(WORKER_MODE_ENV, None)
            if worker_mode:
                os.environ[WORKER_MODE_ENV] = worker_mode
            name = f"{model}-{mode}-ps-{ps}"
            sets = [f"model.name={model}", *MODEL_SETTINGS.get(model, []), "sinks.predictions=null",
                    f"job.python_execution_mode={exec_mode}", "job.report_every_s=1", *args.set]
            if ps == "on":
                sets.append("ps.enabled=true")
            cfg = load_config(args.config, sets)
            size = cfg.source.generator.batch_size
            want = cfg.worker.intra_op_threads
            if want and want != tf.config.threading.get_intra_op_parallelism_threads():
                try:  # the raw-TF ceiling runs in this process: its threads can be set once
                    tf.config.threading.set_intra_op_parallelism_threads(want)
                except RuntimeError:
                    raise SystemExit(f"{model}: the ceiling wants {want} TensorFlow threads, this process has "
                                     f"{tf.config.threading.get_intra_op_parallelism_threads()}: run "
                                     "models with different worker.intra_op_threads in separate runs") from None
            quiet = wait_quiet()  # the previous row's processes gone before the baselines
            vw = run_vw(vw_file, args.events)  # the baselines right before the job: same load
            ceiling = raw_tf_ceiling(cfg.model, FeatureLayout.from_config(cfg.features), ids, dense, labels, size)
            generator_rate = None
            for path in args.paths:
                run_sets = [*sets, f"job.run_dir={tmp}/{name}-{path}"]
                if ps == "on":  # a fresh server per run
                    run_sets += [f"ps.address=grpc://127.0.0.1:{free_port()}",
                                 f"ps.checkpoint_dir={tmp}/{name}-{path}-ps"]
                produce_s = 0.0
                if PATHS[path]:  # the model's steps as the generator path's: a backlog's chunk cut to `size` rows
                    kafka_sets, produce_s = kafka_source(base, brk.bootstrap, path, f"{name}-{path}", args.events)
                    run_sets += [*kafka_sets, f"source.max_batch_rows={size}"]
                job = run_job(load_config(args.config, run_sets), args.events)
                if path == "generator":
                    generator_rate = job["rows_per_s"]
                rows.append({"model": model, "mode": mode, "ps": ps, "path": path, "events": args.events,
                             "job_rows_per_s": job["rows_per_s"], "ceiling_rows_per_s": ceiling["rows_per_s"],
                             "ceiling_cpu_us": 1e6 * ceiling["cpu_seconds"] / (len(labels) - size),
                             "vw_rows_per_s": vw["rows_per_s"], "vw_rows_per_s_runs": vw["rows_per_s_runs"],
                             "vw_rows_per_s_median": vw["rows_per_s_median"], "quiet_wait_s": quiet["waited_s"],
                             "vw_cpu_us": vw["cpu_us_per_event"], "vw_rss": vw["rss"],
                             "job_vs_ceiling": job["rows_per_s"] / ceiling["rows_per_s"],
                             "job_vs_vw": job["rows_per_s"] / vw["rows_per_s"],
                             "job_vs_generator": job["rows_per_s"] / generator_rate if generator_rate else None,
                             "first_prediction_s": job["first_prediction_s"], "produce_s": produce_s,
                             "job_auc": job["auc"], "ceiling_auc": ceiling["auc"], "cpu_us": job["cpu_us"],
                             "rss": job["rss"], "load": os.getloadavg()[0]})
                print(json.dumps(rows[-1]), flush=True)
    _tables(rows, args.json)
    print("\nPython stages, CPU µs/event in one process:", json.dumps({k: round(v, 3) for k, v in stages.items()}))
    checked = goals(rows)
    print_goals(checked)
    print(json.dumps({"anchors": rows, "goals": checked, "python_stages_cpu_us": stages}))


def _tables(rows: list[dict], json_path: str | None) -> None:
    """Rates and every ratio; CPU µs/event per process; RSS per process."""
    def key(r: dict) -> list[str]:
        return [r["model"], r["mode"], r["ps"], r["path"]]

    def ratio(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    head = ["model", "Python operators", "PS sync", "source"]
    report(rows, [*head, "events", "job ev/s", "raw-TF ceiling ev/s", "VW ev/s", "job / ceiling", "job / VW",
                  "job / generator path", "first prediction s", "job AUC", "ceiling AUC", "load avg"],
           lambda r: [*key(r), f"{r['events']:,}", f"{r['job_rows_per_s']:,.0f}",
                      f"{r['ceiling_rows_per_s']:,.0f}", f"{r['vw_rows_per_s']:,.0f}", ratio(r["job_vs_ceiling"]),
                      ratio(r["job_vs_vw"]), ratio(r["job_vs_generator"]), f"{r['first_prediction_s']:.1f}",
                      f"{r['job_auc']:.4f}", f"{r['ceiling_auc']:.4f}", f"{r['load']:.1f}"],
           json_path)
    roles = [r for r in ROLES if any(r in row["cpu_us"] for row in rows)]
    report(rows, [*head, *roles, "job total", "ceiling (1 process)", "VW (1 process)"],
           lambda r: [*key(r), *(f"{r['cpu_us'].get(k, 0):.2f}" for k in roles),
                      f"{r['cpu_us']['total']:.2f}", f"{r['ceiling_cpu_us']:.2f}", f"{r['vw_cpu_us']:.2f}"], None)
    report(rows, [*head, *(f"{k} MiB mid / end" for k in roles), "VW peak MiB"],
           lambda r: [*key(r), *(_mib(r["rss"].get(k, (0, 0))) for k in roles), f"{r['vw_rss'] / 2**20:.0f}"], None)


def _mib(pair: tuple[int, int]) -> str:
    return f"{pair[0] / 2**20:.0f} / {pair[1] / 2**20:.0f}"


if __name__ == "__main__":
    main()
