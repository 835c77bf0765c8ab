"""Every Prometheus metric name flinkdl exports, in one place (dashboards and alert rules use these).

All carry the labels ``job``, ``model`` and ``subtask``. Sink metrics come from the evaluator
process (``EvaluateAndSink``, subtask 0), worker metrics from each TF worker, PS metrics from
the parameter-server client (names defined here for ``flinkdl/ps``; see :class:`PSMetrics`).
"""

from __future__ import annotations

BASE_LABELS = ("job", "model", "subtask")

# sink / evaluator
AUC_WINDOW = "flinkdl_auc_window"                    # gauge, + label window (exact, None -> NaN)
AUC_CUMULATIVE = "flinkdl_auc_cumulative"            # gauge (bounded-memory binned AUC)
AUC_ERROR_BOUND = "flinkdl_auc_cumulative_error_bound"  # gauge: |auc - exact| <= this
LOGLOSS = "flinkdl_logloss"                          # gauge, cumulative
MEAN_SCORE = "flinkdl_mean_score"                    # gauge: mean prediction
OBSERVED_CTR = "flinkdl_observed_ctr"                # gauge: mean label
CALIBRATION = "flinkdl_calibration"                  # gauge: mean_score / observed_ctr
SLICE_AUC = "flinkdl_slice_auc_cumulative"           # gauge, + label slice
SLICE_LOGLOSS = "flinkdl_slice_logloss"              # gauge, + label slice
SLICE_CALIBRATION = "flinkdl_slice_calibration"      # gauge, + label slice
EVENTS_IN = "flinkdl_events_in"                      # counter (_total): raw events reaching the sink
EVENTS_SCORED = "flinkdl_events_scored"              # counter (_total): predicted (labelled or not)
EVENTS_TRAINED = "flinkdl_events_trained"            # counter (_total): predicted-then-trained (labelled)
EVENTS_PER_SECOND = "flinkdl_events_per_second"      # gauge: between the last two reports
DEAD_LETTERS = "flinkdl_dead_letters"                # counter (_total), + label reason
SCHEMA_DRIFT_ROWS = "flinkdl_schema_drift_rows"      # counter (_total), + label column (unknown, ignored)
MODEL_VERSION = "flinkdl_model_version"              # gauge: latest model version seen

# freshness, per batch scored (the sink of a training job, each subtask of a serving job)
SCORING_LATENCY_SECONDS = "flinkdl_scoring_latency_seconds"  # histogram: arrival at featurize -> scored
MODEL_AGE_SECONDS = "flinkdl_model_age_seconds"      # histogram: scored - newest trained event time

# TF worker
WORKER_BATCH_SECONDS = "flinkdl_worker_batch_seconds"  # histogram: one predict_then_train step
WORKER_EVENTS = "flinkdl_worker_events"                # counter (_total): events trained on
WORKER_MODEL_VERSION = "flinkdl_worker_model_version"  # gauge

# ensemble variants (model.name: ensemble; flinkdl/worker/hooks/variants.py), + label variant
VARIANT_AUC_WINDOW = "flinkdl_variant_auc_window"            # gauge: AUC of the last ensemble.window_events
VARIANT_LOGLOSS_WINDOW = "flinkdl_variant_logloss_window"    # gauge: log loss of the same window
VARIANT_AUC_CUMULATIVE = "flinkdl_variant_auc_cumulative"    # gauge: progressive AUC (bounded)
VARIANT_WEIGHT = "flinkdl_variant_weight"                    # gauge: serving weight (1 = served alone)

# parameter server (client side, in each TF worker; flinkdl/worker/ps_sync.py PsSync)
PS_PULL_SECONDS = "flinkdl_ps_pull_seconds"          # histogram: before_step (pull of newly touched rows)
PS_PUSH_SECONDS = "flinkdl_ps_push_seconds"          # histogram: a sync (push deltas + refresh)
PS_LAG_BATCHES = "flinkdl_ps_lag_batches"            # gauge: batches trained locally, not yet pushed
PS_SYNCS = "flinkdl_ps_syncs"                        # counter (_total): pushes to the PS

# serving job (flinkdl serve; flinkdl/pipeline/serve.py ScoreRequests, one endpoint per subtask)
SERVING_MODEL_VERSION = "flinkdl_serving_model_version"  # gauge: PS version the subtask scores with
SERVING_REFRESH_LAG_SECONDS = "flinkdl_serving_refresh_lag_seconds"  # histogram: PS commit -> loaded here
SERVING_EVENTS = "flinkdl_serving_events"            # counter (_total): requests scored
SERVING_BATCH_SECONDS = "flinkdl_serving_batch_seconds"  # histogram: score + publish one batch

# publishing (the publishing TF worker, subtask 0; flinkdl/publish, docs/PUBLISH.md)
PUBLISH_PUBLISHED = "flinkdl_publish_published"      # counter (_total): versions published
PUBLISH_REFUSED = "flinkdl_publish_refused"          # counter (_total): versions the quality gate refused
PUBLISH_REFUSED_AUC = "flinkdl_publish_refused_auc"  # gauge: window AUC of the last refused version
PUBLISH_GATE_AUC = "flinkdl_publish_gate_auc"        # gauge: window AUC at the last gate check
PUBLISH_GATE_CALIBRATION = "flinkdl_publish_gate_calibration"  # gauge: mean score / rate at the last check
PUBLISH_VERSION = "flinkdl_publish_version"          # gauge: last published version
PUBLISH_LATENCY_SECONDS = "flinkdl_publish_latency_seconds"  # gauge: PS commit -> on disk, last version

# feedback job: serving scores vs settled labels (flinkdl/pipeline/feedback.py SettledEvaluation, docs/FEEDBACK.md)
SETTLED_AUC = "flinkdl_settled_auc"                  # gauge: cumulative AUC of serving scores (binned)
SETTLED_LOGLOSS = "flinkdl_settled_logloss"          # gauge: cumulative log loss of serving scores
SETTLED_CALIBRATION = "flinkdl_settled_calibration"  # gauge: mean serving score / settled positive rate
SETTLED_MEAN_SCORE = "flinkdl_settled_mean_score"    # gauge: mean serving score of settled impressions
SETTLED_OBSERVED_RATE = "flinkdl_settled_observed_rate"  # gauge: settled positive rate
SETTLED_EVENTS = "flinkdl_settled_events"            # counter (_total): impressions settled and paired
SETTLED_PENDING = "flinkdl_settled_pending"          # gauge: served scores waiting for their label
FEEDBACK_LATE = "flinkdl_feedback_late"              # counter (_total): late feedback, + label kind
FEEDBACK_JOIN_EVENTS = "flinkdl_feedback_join_events"  # counter (_total): the join's other counters, + label kind

# parameter server (server side, flinkdl ps serve --metrics-port; flinkdl/ps/metrics.py)
PS_SERVER_REQUEST_SECONDS = "flinkdl_ps_server_request_seconds"  # histogram, + label op
PS_SERVER_ROWS = "flinkdl_ps_server_rows"            # counter (_total), + label op (push, pull)
PS_SERVER_REFUSED = "flinkdl_ps_server_refused"      # counter (_total), + label op
PS_SERVER_AUTH_REFUSED = "flinkdl_ps_server_auth_refused"  # counter (_total), + labels op, reason
PS_SERVER_VERSION = "flinkdl_ps_server_version"      # gauge: last committed version

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REFRESH_LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
MODEL_AGE_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
