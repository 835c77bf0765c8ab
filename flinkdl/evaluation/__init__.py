"""Progressive (prequential) evaluation metrics fed with whole prediction batches."""

from flinkdl.evaluation.base import Metric
from flinkdl.evaluation.metrics import LogLoss, MeanScore, ObservedCTR, ProgressiveAUC, auc_from_arrays

__all__ = ["LogLoss", "MeanScore", "Metric", "ObservedCTR", "ProgressiveAUC", "auc_from_arrays"]
