"""Progressive (prequential) evaluation metrics fed with whole prediction batches.

:mod:`.maths` holds the formulas (AUC from counts, its bound, log loss, binning), :mod:`.metrics`
and :mod:`.binned` the small ``update``/``get`` metrics, :mod:`.windows` the exact window AUCs,
:mod:`.evaluator` the job's evaluator and :mod:`.summary` the values it reports.
"""

from flinkdl.evaluation.base import BatchMetric, Metric
from flinkdl.evaluation.binned import BinnedAUC
from flinkdl.evaluation.metrics import LogLoss, MeanScore, ObservedCTR, ProgressiveAUC, auc_from_arrays
from flinkdl.evaluation.summary import Evaluation, QualityStats, RunSummary, WindowStats

__all__ = ["BatchMetric", "BinnedAUC", "Evaluation", "LogLoss", "MeanScore", "Metric", "ObservedCTR",
           "ProgressiveAUC", "QualityStats", "RunSummary", "WindowStats", "auc_from_arrays"]
