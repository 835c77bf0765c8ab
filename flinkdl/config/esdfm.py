"""``feedback.es_dfm``: the elapsed-time model of the ``es_dfm`` strategy (docs/FEEDBACK.md, "ES-DFM").

>>> EsDfmConfig().elapsed_buckets, EsDfmConfig().learning_rate
(16, 0.05)
"""

from __future__ import annotations

from pydantic import Field

from flinkdl.config.base import Strict


class EsDfmConfig(Strict):
    """The auxiliary classifiers of ES-DFM (Yang et al., AAAI 2021): two logistic regressions over
    the main model's hashed ids and dense features plus a bucket of the elapsed time ``e`` (from
    the impression to the training of its row), trained online on the same stream."""

    elapsed_s: float = Field(0.0, ge=0, description="ES-DFM's waiting time: an impression is trained (as a negative "
                             "unless clicked by then) this long after it; 0: on arrival (as fake_negative)")
    elapsed_buckets: int = Field(16, ge=1, le=64, description="log2 buckets of the elapsed time (seconds): "
                                 "bucket 0 below 1 s, k for [2^(k-1), 2^k) s, the last one open")
    learning_rate: float = Field(0.05, gt=0, description="adagrad learning rate of the auxiliary models")
    warmup_labels: int = Field(100, ge=0, description="the weights are 1 (p_dp = 0, p_rn = 1) until each auxiliary "
                               "model has learnt from this many rows of each label (no history to start from)")
