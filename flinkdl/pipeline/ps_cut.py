"""PsCut: the PS model of a checkpoint at parallelism > 1, recorded as a cut of writer lanes.

Each exactly-once trainer emits its anchor ``{"writer", "seq"}`` (a segment of its lane,
:mod:`flinkdl.ps.lanes`) on the side output :data:`ANCHORS` when it moves. This operator, at
parallelism 1, keeps the newest anchor of every writer in keyed state and records the cut
``{writer: seq}`` on the PS at each change (``record_cut``; ids count up in keyed state). Aligned
barriers deliver everything a trainer emitted before its barrier *C* to PsCut before PsCut's own
snapshot *C*, so the cut in PsCut's state *C* is the trainers' anchors in state *C*. Serving and
export read the newest recorded cut (:func:`flinkdl.ps.lane_service.newest_cut`). Every ``ps.retain``
cuts it compacts the lanes: the newest ``ps.retain`` cuts are kept, and the segments all of them
have passed are folded (:mod:`flinkdl.ps.lane_compact`).
"""

from __future__ import annotations

import json
import logging

from pyflink.common import Types
from pyflink.datastream import DataStream, KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from flinkdl.pipeline.operator import open_operator

log = logging.getLogger(__name__)

#: The trainers' anchors as JSON strings.
ANCHORS = OutputTag("ps-anchors", Types.STRING())


class PsCut(KeyedProcessFunction):
    """Keeps ``{writer: seq}`` in keyed state and records it on the PS at each change."""

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    def open(self, ctx: RuntimeContext) -> None:
        from flinkdl.ps.client import PsClient

        cfg = open_operator(self.cfg_json)
        self.client = PsClient.from_config(cfg.ps)
        self.keep = cfg.ps.retain
        self._cut = ctx.get_state(ValueStateDescriptor("cut", Types.STRING()))
        self._id = ctx.get_state(ValueStateDescriptor("cut_id", Types.LONG()))

    def process_element(self, value: str, ctx: KeyedProcessFunction.Context):
        anchor = json.loads(value)
        cut = json.loads(self._cut.value() or "{}")
        cut[str(anchor["writer"])] = int(anchor["seq"])
        cut_id = (self._id.value() or 0) + 1
        self.client.record_cut(cut_id, cut)
        self._cut.update(json.dumps(cut))
        self._id.update(cut_id)
        if cut_id % self.keep == 0:
            self._compact()
        return iter(())

    def _compact(self) -> None:
        try:
            self.client.lane_compact(self.keep)
        except Exception as e:  # an optimisation: the next round folds what this one could not
            log.warning("lane compaction failed (retried after %d more cuts): %s", self.keep, e)

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()


def add_ps_cut(trained: DataStream, cfg_json: str) -> None:
    """PsCut (parallelism 1) on the trainers' anchor side output. The trainer then ends its chain:
    PyFlink 2.3 passes a side output of an operator in the middle of a Python chain on to the next
    operator as if it were a main output."""
    trained.disable_chaining()
    (trained.get_side_output(ANCHORS).key_by(lambda _: 0, key_type=Types.INT())
     .process(PsCut(cfg_json), output_type=Types.STRING()).name("ps-cut").set_parallelism(1))
