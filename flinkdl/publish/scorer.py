"""The exported model: a ``tf.Module`` holding a model's variables with its two scoring signatures.

- ``serving_default``: one 1-D tensor per raw column, in config order (int64 for an ``int``
  categorical field, string for a ``string`` one, ``""`` = missing; float64 for each numeric field,
  NaN = missing). The graph hashes, crosses, bucketizes and transforms like the job
  (:class:`flinkdl.publish.graph.RawFeaturizer`), then returns ``score``.
- ``score_features``: the featurizer's output (``ids`` int64 ``[B, F]``, ``dense`` float32
  ``[B, D]``) → ``score``. This is what the ONNX export holds (:mod:`flinkdl.publish.onnx_export`).
"""

from __future__ import annotations

import tensorflow as tf

from flinkdl.config.features import FeatureConfig
from flinkdl.models.base import ModelBase
from flinkdl.publish.graph import RawFeaturizer


class Scorer(tf.Module):
    """Scores featurized or raw events with ``model``'s variables (tracked, so they are saved)."""

    def __init__(self, features: FeatureConfig, model: ModelBase) -> None:
        super().__init__()
        self.model = model
        self.model_variables = list(model.variables().values())
        layout = model.layout
        self.feature_specs = [tf.TensorSpec([None, layout.n_ids], tf.int64, name="ids"),
                              tf.TensorSpec([None, layout.n_dense], tf.float32, name="dense")]
        self.score_features = tf.function(self._score_features, input_signature=self.feature_specs)
        self.featurizer = RawFeaturizer(features)
        self.score_raw = tf.function(self._score_raw, input_signature=self.featurizer.specs())

    def _score_features(self, ids: tf.Tensor, dense: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"score": self.model.predict(ids, dense)}

    def _score_raw(self, *cols: tf.Tensor) -> dict[str, tf.Tensor]:
        ids, dense = self.featurizer(*cols)
        return {"score": self.model.predict(ids, dense)}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """``serving_default`` (raw columns) and ``score_features``, for ``tf.saved_model.save``."""
        return {"serving_default": self.score_raw.get_concrete_function(),
                "score_features": self.score_features.get_concrete_function()}
