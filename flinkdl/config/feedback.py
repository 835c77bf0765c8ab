"""``feedback:``: join impressions with feedback that arrives later (docs/FEEDBACK.md).

With this section the job reads two topics: impressions (``source.kafka``, json messages without a
label) and feedback (``feedback.topic``: id, event time, label or action). Each impression is scored
on arrival and held in Flink keyed state until its feedback arrives or its attribution window closes.

>>> FeedbackConfig(topic="clicks").strategy
'fake_negative'
>>> FeedbackConfig(topic="c", window_s=60).window_ms, FeedbackConfig(topic="c").is_positive("click")
(60000, True)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flinkdl.config.base import Strict
from flinkdl.config.esdfm import EsDfmConfig

Strategy = Literal["wait_window", "fake_negative", "es_dfm"]


class DelayConfig(Strict):
    """Feedback delays of the built-in stream (``flinkdl produce --generator --feedback-topic``).

    A click's delay is a mixture: with ``fast_share`` an exponential of mean ``fast_mean_s``, else
    a log-normal of median ``slow_median_s``; then everything is multiplied by ``scale`` (e.g.
    ``1/60``: an hour of real delay becomes a minute of event time). The defaults give ~35 % of
    clicks within an hour and ~50 % within a day (Chapelle, KDD 2014).
    """

    fast_share: float = Field(0.35, ge=0, le=1)
    fast_mean_s: float = Field(600.0, gt=0, description="mean delay of the fast part (seconds, unscaled)")
    slow_median_s: float = Field(262_000.0, gt=0, description="median delay of the slow part (unscaled)")
    slow_sigma: float = Field(1.5, gt=0, description="log-normal sigma of the slow part")
    scale: float = Field(1.0, gt=0, description="multiply every delay (1/60: hours become minutes)")
    seed: int = 11


class FeedbackConfig(Strict):
    """The feedback topic, the join's event-time rules and the delayed-feedback strategy."""

    topic: str = Field(min_length=1, description="feedback topic (same broker and format as source.kafka)")
    group_id: str | None = Field(None, min_length=1, description="null: <source.kafka.group_id>-feedback")
    id_field: str = Field("event_id", min_length=1, description="the impression id, in both topics")
    ts_field: str = Field("ts", min_length=1, description="event time in ms, in both topics")
    label_field: str = Field("label", min_length=1, description="the feedback's label or action")
    positive_actions: list[str] = Field(default_factory=lambda: ["1", "true", "click", "conversion"],
                                        description="values of label_field that mean a positive")
    window_s: float = Field(3600.0, gt=0, description="attribution window, event-time seconds after the impression")
    strategy: Strategy = "fake_negative"
    out_of_orderness_s: float = Field(5.0, ge=0, description="watermark bound on out-of-order events")
    idle_timeout_s: float | None = Field(60.0, gt=0, description="a partition without events this long "
                                         "(processing time) no longer holds the watermark back; null: never "
                                         "(docs/FEEDBACK.md: when every input goes idle)")
    grace_s: float = Field(0.0, ge=0, description="keep an impression this long after its window closed, so a "
                           "late positive (event time within the window) is still trained")
    count_clicks: bool = Field(False, description="count out_of_window and orphan clicks (a third join, kept "
                               "W + G per click; no strategy needs it): false for throughput")
    sql_parallelism: int | None = Field(None, ge=1, description="parallelism of the join (keyed by id; the "
                                        "topics are read at job.parallelism); null: job.parallelism")
    batch_ms: int = Field(200, gt=0, description="joined examples are batched per window this long")
    event_time_batches: bool = Field(False, description="true: batch the trainer's rows per event-time window of "
                                     "the time each is known at, sorted (the same batches in every run: replays and "
                                     "restores train the same model; serving waits out_of_orderness_s + batch_ms + "
                                     "coalesce_span_s); false: per processing-time window (jobs/click_feedback.yaml "
                                     "sets true)")
    coalesce_rows: int = Field(128, ge=1, description="with event_time_batches: consecutive event-time windows "
                               "are trained as one batch until it holds this many messages (1: each window alone)")
    coalesce_span_s: float = Field(1.0, ge=0, description="... or until its messages' known times span this much "
                                   "event time (what a live stream's serving waits beyond the watermark)")
    coalesce_idle_s: float = Field(30.0, gt=0, description="... or until no window came this long (processing "
                                   "time: the one cut that is not the same in every run)")
    eval_window_s: float | None = Field(None, gt=0, description="settled-label metrics per tumbling window of "
                                        "impression event time this long; null: window_s")
    delay: DelayConfig = DelayConfig()
    es_dfm: EsDfmConfig = Field(default_factory=EsDfmConfig, description="the es_dfm strategy's elapsed-time model")

    @model_validator(mode="after")
    def _distinct_fields(self) -> FeedbackConfig:
        if len({self.id_field, self.ts_field, self.label_field}) < 3:
            raise ValueError(f"feedback: id_field ({self.id_field!r}), ts_field ({self.ts_field!r}) and "
                             f"label_field ({self.label_field!r}) must be three different fields")
        return self

    @property
    def window_ms(self) -> int:
        return int(self.window_s * 1000)

    @property
    def eval_window_ms(self) -> int:
        return int((self.eval_window_s or self.window_s) * 1000)

    @property
    def coalesce_span_ms(self) -> int:
        return int(self.coalesce_span_s * 1000)

    @property
    def grace_ms(self) -> int:
        return int(self.grace_s * 1000)

    def is_positive(self, value: object) -> bool | None:
        """The label of a feedback value: True, False, or None when there is none."""
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value >= 1
        return str(value).strip().lower() in {a.lower() for a in self.positive_actions}


def check_feedback_job(feedback: FeedbackConfig, source_kind: str, source_format: str | None,
                       id_column: str | None, ts_column: str | None, exactly_once: bool = False,
                       parallelism: int = 1) -> None:
    """The rest of the job config must fit a feedback job; raises ``ValueError`` naming key and value."""
    if feedback.strategy == "es_dfm":
        if feedback.es_dfm.elapsed_s != 0:
            raise ValueError(f"feedback.es_dfm.elapsed_s: the Flink job takes only 0 (trained on arrival), got "
                             f"{feedback.es_dfm.elapsed_s} (the in-memory simulation bench/feedback_sim.py takes more)")
        if exactly_once and parallelism > 1:
            raise ValueError(f"feedback.strategy: es_dfm with job.exactly_once needs job.parallelism 1, got "
                             f"{parallelism} (its elapsed-time model is not in the writer lanes, docs/FEEDBACK.md)")
    if source_kind != "kafka":
        raise ValueError(f"feedback: needs source.kind: kafka (the impressions topic), got {source_kind!r}")
    if source_format != "json":
        raise ValueError(f"feedback: needs source.kafka.format: json, got {source_format!r}")
    if id_column != feedback.id_field:
        raise ValueError(f"feedback.id_field {feedback.id_field!r} must be features.event_id (got {id_column!r})")
    if ts_column != feedback.ts_field:
        raise ValueError(f"feedback.ts_field {feedback.ts_field!r} must be features.timestamp (got {ts_column!r})")
