"""Per-row loss weights (``predict_then_train(weights=)``): absent, the step is unchanged to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from tests.models.test_unlabelled import _assert_same, _model, _state, batch

#: per variable of the lr/adagrad state after three unweighted steps: (sum, sum of squares). Measured before
#: weights existed; compared to float32 rounding, since a bit-exact hash differs between CPUs (AVX-512 or not)
PINNED = {
    "bias": (-0.0016635581851005554, 2.767425835215054e-06),
    "bias/accumulator": (62.70587921142578, 3932.02728767792),
    "lr_w": (-0.11098933033645153, 0.5350011590235385),
    "lr_w/accumulator": (483.6390903145075, 205.59391722368784),
    "lr_w_dense": (-0.20067501813173294, 0.020419039242604298),
    "lr_w_dense/accumulator": (29.326074600219727, 430.50424417773684),
}


@pytest.mark.parametrize("micro", [None, 8])
@pytest.mark.parametrize("name", ["lr", "deepfm"])
def test_unit_weights_are_the_unweighted_step_bit_for_bit(name: str, micro: int | None) -> None:
    a, b = _model(name, "ftrl+adam", micro), _model(name, "ftrl+adam", micro)
    for step in range(3):
        ids, dense, y = batch(20, seed=step)
        sa = a.predict_then_train(ids, dense, y).numpy()
        sb = b.predict_then_train(ids, dense, y, weights=np.ones(20, np.float32)).numpy()
        np.testing.assert_array_equal(sa, sb)
    _assert_same(a, b, atol=0)


def test_no_weights_keeps_the_pinned_state() -> None:
    """The unweighted step's bits, pinned: the same hash before and after weights were added."""
    m = _model("lr", "adagrad")
    for step in range(3):
        ids, dense, y = batch(20, seed=step)
        m.predict_then_train(ids, dense, y)
    state = {k: (float(np.sum(v, dtype=np.float64)), float(np.sum(np.square(v, dtype=np.float64))))
             for k, v in _state(m).items()}
    assert state.keys() == PINNED.keys()
    for name, pinned in PINNED.items():
        np.testing.assert_allclose(state[name], pinned, rtol=1e-5, atol=1e-8, err_msg=name)


def test_weight_two_is_the_row_twice_and_zero_is_no_row() -> None:
    ids, dense, y = batch(12, seed=5)
    w = np.array([2, 0] + [1] * 10, np.float32)
    a = _model("lr", "adagrad")
    a.predict_then_train(ids, dense, y, weights=w)
    keep = np.array([0, 0, *range(2, 12)])  # row 0 twice, row 1 gone
    b = _model("lr", "adagrad")
    b.predict_then_train(ids[keep], dense[keep], y[keep])
    _assert_same(a, b, atol=1e-6)


@pytest.mark.parametrize("micro", [None, 4])
def test_weights_follow_the_labelled_rows(micro: int | None) -> None:
    ids, dense, y = batch(16, seed=7)
    mask = np.arange(16) % 3 != 0
    w = np.linspace(0.5, 2.0, 16).astype(np.float32)
    a, b = _model("fm", "adagrad", micro), _model("fm", "adagrad", micro)
    sa = a.predict_then_train(ids, dense, y, labelled=mask, weights=w).numpy()
    b.predict(ids[~mask], dense[~mask])
    sb = b.predict_then_train(ids[mask], dense[mask], y[mask], weights=w[mask]).numpy()
    np.testing.assert_allclose(sa[mask], sb, rtol=0, atol=1e-6)
    _assert_same(a, b, atol=1e-6)

