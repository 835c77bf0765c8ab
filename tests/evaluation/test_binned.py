import pickle

import numpy as np
import pytest

from flinkdl.evaluation.binned import BinnedAUC
from flinkdl.evaluation.metrics import auc_from_arrays


def test_a_restored_metric_goes_on_counting_where_it_was_pickled():
    """The sink's exactly-once snapshot pickles the metric; updates after a restore must count."""
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 4000), rng.random(4000, dtype=np.float32)
    m = BinnedAUC(bins=1 << 12)
    m.update(y[:2000], s[:2000])
    restored = pickle.loads(pickle.dumps(m))
    m.update(y[2000:], s[2000:])
    restored.update(y[2000:], s[2000:])
    assert restored.get() == m.get()
    assert abs(m.get() - auc_from_arrays(y, s)) <= m.error_bound


def test_partial_metrics_merge_to_the_metric_of_the_whole_stream():
    """Counts-based metrics of two subtasks merge into exactly the metric of their union."""
    from flinkdl.evaluation.evaluator import Quality
    from flinkdl.evaluation.metrics import LogLoss

    rng = np.random.default_rng(1)
    y, s = rng.integers(0, 2, 6000), rng.random(6000, dtype=np.float32)
    whole, a, b = BinnedAUC(bins=1 << 10), BinnedAUC(bins=1 << 10), BinnedAUC(bins=1 << 10)
    whole.update(y, s)
    a.update(y[:2500], s[:2500])
    b.update(y[2500:], s[2500:])
    a.merge(b)
    assert (a.get(), a.error_bound) == (whole.get(), whole.error_bound)
    ll_whole, ll_a, ll_b = LogLoss(), LogLoss(), LogLoss()
    ll_whole.update(y, s)
    ll_a.update(y[:2500], s[:2500])
    ll_b.update(y[2500:], s[2500:])
    ll_a.merge(ll_b)
    assert ll_a.get() == pytest.approx(ll_whole.get(), rel=1e-12)
    q_whole, q_a, q_b = Quality(1 << 10), Quality(1 << 10), Quality(1 << 10)
    q_whole.update_checked(y == 1, s)
    q_a.update_checked(y[:2500] == 1, s[:2500])
    q_b.update_checked(y[2500:] == 1, s[2500:])
    q_a.merge(q_b)
    got, want = q_a.get(), q_whole.get()
    assert (got.auc, got.events, got.ctr) == (want.auc, want.events, want.ctr)
    assert got.logloss == pytest.approx(want.logloss, rel=1e-12)
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(BinnedAUC(bins=1 << 11))
