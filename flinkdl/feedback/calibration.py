"""Fake-negative calibration (Ktena et al., RecSys 2019, "FN calibration").

Under ``fake_negative`` every impression is trained as a negative at once and trained again as a
positive when its click arrives. The model then learns the *biased* distribution

    b(y=1 | x) = p(x) / (1 + p(x))

(each positive appears once as a positive and once as a negative; each true negative once), not
the click probability ``p(x)``. Inverting it gives the served, calibrated probability

    p(x) = b(x) / (1 - b(x))

which :func:`fn_calibrate` applies to every score the model makes (clipped below 1, since a
model's ``b`` may exceed 1/2 where the true ``b`` cannot). This is the paper's FN *calibration*;
its FN *weighting* (a weighted loss with ``w+ = 1 + p``, ``w- = (1 - p)(1 + p)``) would need per-row
loss weights in the model, which the trainer does not take.

>>> import numpy as np
>>> fn_calibrate(np.array([0.0, 0.2, 0.5, 0.9])).round(3).tolist()
[0.0, 0.25, 0.999, 0.999]
"""

from __future__ import annotations

import numpy as np

#: The largest calibrated score (``b >= 1/2`` would give ``p >= 1``).
MAX_P = 0.999


def fn_calibrate(b: np.ndarray) -> np.ndarray:
    """``b / (1 - b)``, clipped to ``[0, MAX_P]``; same dtype as ``b``."""
    b64 = np.clip(b.astype(np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        p = np.where(b64 < 1.0, b64 / np.maximum(1.0 - b64, 1e-12), MAX_P)
    return np.minimum(p, MAX_P).astype(b.dtype)
