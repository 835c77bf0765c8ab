"""ONNX export of the ``score_features`` signature (tf2onnx), runnable by onnxruntime.

ONNX gets the featurized inputs only: ``ids`` int64 ``[B, F]`` and ``dense`` float32 ``[B, D]``
→ ``score`` float32 ``[B]``. The raw-column signature's murmur3 needs uint32 bitwise ops that
tf2onnx does not convert (and onnxruntime's ``BitShift`` takes unsigned types only), and its
string hashing needs byte decoding that ONNX lacks; an ONNX client hashes with the job's
featurizer (:class:`flinkdl.features.transform.Featurizer`) or any ``mmh3`` (docs/PUBLISH.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from flinkdl.publish.scorer import Scorer

#: ONNX opset of the export (onnxruntime runs it).
OPSET = 17
NAMES = {"ids:0": "ids", "dense:0": "dense", "Identity:0": "score"}


def export_onnx(scorer: Scorer, path: str | Path) -> None:
    """Write ``scorer.score_features`` with its variables frozen as constants to ``path``."""
    import onnx
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(scorer.score_features.get_concrete_function())
    ins, outs = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    os.environ.setdefault("TF2ONNX_LOG_LEVEL", "ERROR")
    proto, _ = tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=ins, output_names=outs,
                                              opset=OPSET)
    _rename(proto.graph, NAMES)
    onnx.save_model(proto, str(path))


def _rename(graph: object, names: dict[str, str]) -> None:
    """Give the graph's inputs and outputs their signature names (tf2onnx keeps TF's ``name:0``)."""
    for value in [*graph.input, *graph.output]:  # type: ignore[attr-defined]
        value.name = names.get(value.name, value.name)
    for node in graph.node:  # type: ignore[attr-defined]
        node.input[:] = [names.get(x, x) for x in node.input]
        node.output[:] = [names.get(x, x) for x in node.output]

