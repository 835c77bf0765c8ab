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
