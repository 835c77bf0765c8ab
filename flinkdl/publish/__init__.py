"""Gated publishing of the model for serving (docs/PUBLISH.md).

:mod:`.graph` (the featurizer in TF ops), :mod:`.scorer` (the exported module and its signatures),
:mod:`.onnx_export`, :mod:`.gate` (the quality gate), :mod:`.layout` (TF Serving's directory layout,
rollback), :mod:`.publisher` (writes a version), :mod:`.metrics` (Prometheus), :mod:`.serving` (the
serving job's published model) and :mod:`.warm_start` (``flinkdl ps import``). The step hook that
drives it is :mod:`flinkdl.worker.hooks.publish`.
"""
