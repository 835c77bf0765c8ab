"""The job's entry point on a Flink cluster: ``python -m flinkdl.pipeline --config CONFIG [--set k=v] [-D k=v]``.

``--serve`` builds the serving job of ``flinkdl serve`` (:mod:`flinkdl.pipeline.serve`) instead.

``flinkdl submit`` runs it as ``flink run -pym flinkdl.pipeline``; ``flink run -py
jobs/online_learning.py`` is the same program. The topology is the one ``flinkdl run`` builds,
submitted to whatever cluster ``flink run`` targets. Progress and the final summary go to
``RUN_DIR/metrics.jsonl`` on the TaskManager host.
"""

from __future__ import annotations

import argparse

from flinkdl.config.flink import dynamic_property, merged
from flinkdl.config.loader import load_config
from flinkdl.pipeline.job import build, make_env


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flinkdl.pipeline")
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--max-events", type=int, default=None)
    p.add_argument("-D", dest="flink", action="append", default=[], type=dynamic_property, metavar="KEY=VALUE")
    p.add_argument("--serve", action="store_true", help="the scoring-only serving job")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    cfg.flink.update(merged({}, args.flink))  # -D wins over the flink: section
    # TaskManagers run elsewhere (another cwd or host): make the client's relative paths absolute.
    cfg.job.run_dir = cfg.job.run_dir.resolve()
    if cfg.sinks.predictions is not None:
        cfg.sinks.predictions.path = cfg.sinks.predictions.path.resolve()
    if cfg.source.directory is not None:
        cfg.source.directory.path = cfg.source.directory.path.resolve()
    if args.max_events is not None and cfg.source.kind == "generator":
        cfg.source.generator.events = args.max_events
    if args.serve:
        from flinkdl.pipeline.serve import build_serving, serving_job

        cfg = serving_job(cfg)
        env = make_env(cfg, training=False)
        build_serving(env, cfg)
        env.execute(f"{cfg.job.name}-serving")
        return
    env = make_env(cfg)
    build(env, cfg, args.max_events)
    env.execute(cfg.job.name)


if __name__ == "__main__":
    main()
