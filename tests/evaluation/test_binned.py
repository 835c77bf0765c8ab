import pickle

import numpy as np

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
