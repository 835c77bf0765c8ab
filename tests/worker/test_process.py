"""The worker's TensorFlow threads: the config's, or the model class's own choice."""
from flinkdl.config.schema import WorkerConfig
from flinkdl.models.deepfm import DeepFM
from flinkdl.models.lr import LogisticRegression
from flinkdl.worker.process import intra_op_threads


def test_zero_takes_the_models_choice_and_a_set_value_wins() -> None:
    assert intra_op_threads(WorkerConfig(), LogisticRegression) == 1
    assert intra_op_threads(WorkerConfig(), DeepFM) == 0  # TensorFlow's default
    assert intra_op_threads(WorkerConfig(intra_op_threads=2), LogisticRegression) == 2
    assert intra_op_threads(WorkerConfig(intra_op_threads=3), DeepFM) == 3


def test_a_worker_whose_parent_died_before_it_started_exits() -> None:
    """A restart racing a cancel: the supervisor is gone before the worker's first line, so it is an orphan."""
    import os
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    code = "from flinkdl.worker.process import exit_with_parent; exit_with_parent(0.05); import time; time.sleep(60)"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "FLINKDL_WORKER_PARENT": str(dead.pid)},
                          timeout=50)
    assert proc.returncode == 3
