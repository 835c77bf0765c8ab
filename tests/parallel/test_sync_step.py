"""Synchronous steps: p threaded replicas equal one model stepping on the union of their slices."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from flinkdl.config.schema import ModelConfig, OptimizerConfig
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models import build_model
from flinkdl.parallel.rendezvous import Rendezvous
from flinkdl.parallel.sync_step import LocalExchange, SyncStepper
from flinkdl.ps.errors import PsError

LAYOUT = FeatureLayout(n_ids=4, n_dense=2, buckets=1 << 10)


def cfg(name: str, opt: str = "adagrad") -> ModelConfig:
    dense = OptimizerConfig(name="adam", learning_rate=0.01) if name == "deepfm" else None
    return ModelConfig(name=name, embedding_dim=4, hidden=[8], optimizer=OptimizerConfig(name=opt),
                       dense_optimizer=dense)


def batches(n_batches: int, rows: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        ids = rng.integers(0, 200, (rows, LAYOUT.n_ids), dtype=np.int64)  # few ids: many shared rows
        out.append((ids, rng.normal(size=(rows, LAYOUT.n_dense)).astype(np.float32),
                    (rng.random(rows) < 0.4).astype(np.float32)))
    return out


def run_sync(name: str, opt: str, world: int, per_rank: list[list], micro: int | None):
    rv = Rendezvous()
    models = [build_model(LAYOUT, cfg(name, opt)) for _ in range(world)]
    scores: list[list[np.ndarray]] = [[] for _ in range(world)]
    errors: list[BaseException] = []
    steppers = [SyncStepper(models[r], LocalExchange(rv, r, world, timeout_s=120), micro) for r in range(world)]

    def work(rank: int) -> None:
        try:
            st = steppers[rank]
            for b in per_rank[rank]:
                scores[rank].append(st.train_batch(*b))
            st.drain()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert rv.pending() == 0
    return models, scores, steppers


@pytest.mark.parametrize(("name", "opt", "world", "micro"), [
    ("lr", "adagrad", 2, None), ("lr", "sgd", 4, 8), ("lr", "ftrl", 2, 8),
    ("deepfm", "adagrad", 2, 8), ("deepfm", "adagrad", 4, None),
])
def test_replicas_equal_one_model_on_the_unions(name: str, opt: str, world: int, micro: int | None) -> None:
    rows = 24
    data = batches(3 * world - 1, rows)  # round-robin; the last rank gets one batch fewer (drains)
    per_rank = [data[r::world] for r in range(world)]
    models, scores, steppers = run_sync(name, opt, world, per_rank, micro)

    ref = build_model(LAYOUT, cfg(name, opt))
    m = micro or rows
    ref_scores: list[list[list[np.ndarray]]] = [[[] for _ in per_rank[r]] for r in range(world)]
    for rnd in range(len(per_rank[0])):
        for a in range(0, rows, m):  # one step on slice a of every rank's batch of this round
            have = [r for r in range(world) if rnd < len(per_rank[r])]
            parts = [tuple(x[a:a + m] for x in per_rank[r][rnd]) for r in have]
            s = ref.predict_then_train(*(np.concatenate([p[k] for p in parts]) for k in range(3))).numpy()
            at = 0
            for r, p in zip(have, parts, strict=True):
                ref_scores[r][rnd].append(s[at:at + len(p[2])])
                at += len(p[2])
    want = ref.variables()
    assert steppers[0].batches == len(per_rank[0])  # one per round, as p=1's version (a draining rank: fewer)
    for model in models:
        for n, v in model.variables().items():
            np.testing.assert_allclose(v.numpy(), want[n].numpy(), rtol=1e-4, atol=1e-5, err_msg=n)
    for r in range(world):
        for rnd, got in enumerate(scores[r]):
            np.testing.assert_allclose(got, np.concatenate(ref_scores[r][rnd]), rtol=1e-4, atol=1e-5)
    # replicas equal to each other to the bit: same sums in the same order
    for model in models[1:]:
        for n, v in model.variables().items():
            np.testing.assert_array_equal(v.numpy(), models[0].variables()[n].numpy(), err_msg=n)


def test_unequal_micro_steps_and_empty_batches_stay_in_step() -> None:
    a, b = batches(2, 20, seed=1), batches(1, 7, seed=2)
    empty = (np.zeros((0, LAYOUT.n_ids), np.int64), np.zeros((0, LAYOUT.n_dense), np.float32), np.zeros(0, np.float32))
    models, scores, _ = run_sync("lr", "adagrad", 2, [a, [b[0], empty]], micro=6)
    assert [len(s) for s in scores[0]] == [20, 20] and [len(s) for s in scores[1]] == [7, 0]
    for n, v in models[0].variables().items():
        np.testing.assert_array_equal(v.numpy(), models[1].variables()[n].numpy())


def test_a_missing_rank_fails_with_its_number() -> None:
    rv = Rendezvous()
    with pytest.raises(PsError, match=r"ranks \[1, 2\] of 3 did not come"):
        rv.gather("job-a", 0, 0, 3, b"x", timeout_s=0.2)
    assert rv.pending() == 0
    rv.gather("job-a", 0, 0, 1, b"x", timeout_s=0.2)  # alone: answers at once
    waiting: list[BaseException] = []

    def first() -> None:
        try:
            rv.gather("k", 0, 0, 2, b"x", 0.5)
        except PsError as e:
            waiting.append(e)

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.1)
    with pytest.raises(PsError, match="contributed twice"):
        rv.gather("k", 0, 0, 2, b"y", 0.5)  # rank 0 again under the same key and round
    t.join()
    assert "ranks [1] of 2 did not come" in str(waiting[0])


def test_through_a_ps_server_equals_in_process() -> None:
    from flinkdl.parallel.ps_exchange import PsExchange
    from flinkdl.ps.client import PsClient
    from flinkdl.ps.server import build_server

    server = build_server()
    try:
        data = batches(4, 16, seed=3)
        per_rank = [data[0::2], data[1::2]]
        local, _, _ = run_sync("deepfm", "adagrad", 2, per_rank, micro=8)
        models = [build_model(LAYOUT, cfg("deepfm")) for _ in range(2)]
        errors: list[BaseException] = []

        def work(rank: int) -> None:
            try:
                with PsClient(f"grpc://127.0.0.1:{server.port}") as c:
                    st = SyncStepper(models[rank], PsExchange(c, "job-1", rank, 2, 60.0), 8)
                    for b in per_rank[rank]:
                        st.train_batch(*b)
                    st.drain()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for n, v in models[1].variables().items():
            np.testing.assert_array_equal(v.numpy(), local[0].variables()[n].numpy(), err_msg=n)
        with PsClient(f"grpc://127.0.0.1:{server.port}") as c, \
                pytest.raises(PsError, match=r"ranks \[1\] of 2 did not come within 0.2 s"):
            c.allreduce("job-2", 0, 0, 2, b"x", 0.2)
    finally:
        server.shutdown()


def test_shares_of_a_batch_cover_each_step_block_once() -> None:
    from flinkdl.parallel.deal import share_rows

    world, m, n = 4, 8, 28  # three full blocks and a partial one of 4 rows
    shares = [share_rows(n, r, world, m) for r in range(world)]
    assert shares[0].tolist() == [0, 1, 8, 9, 16, 17, 24, 25] and shares[3].tolist() == [6, 7, 14, 15, 22, 23]
    # micro-step j of every rank (2 rows each) together is block j of the batch
    for j in range(4):
        got = np.sort(np.concatenate([s[2 * j:2 * j + 2] for s in shares]))
        assert got.tolist() == list(range(8 * j, min(8 * j + 8, n)))


def test_with_the_ps_hooks_replicas_stay_equal_to_the_bit() -> None:
    """Rank 0 pushes as single writer (its dense state rounded by the push), rank 1 only loads and rounds alike."""
    import tensorflow as tf

    from flinkdl.config.schema import ParallelConfig, PsConfig
    from flinkdl.parallel.worker import LoadOnlyPsHook, SyncTraining
    from flinkdl.ps.server import build_server
    from flinkdl.worker.hooks.base import Batch
    from flinkdl.worker.hooks.ps import PsHook

    server = build_server()
    ps = PsConfig(enabled=True, address=f"grpc://127.0.0.1:{server.port}", push_every_batches=2,
                  push_every_s=float("inf"), single_writer=True)
    models = [build_model(LAYOUT, cfg("deepfm")) for _ in range(2)]
    data = batches(6, 16, seed=5)
    errors: list[BaseException] = []

    def work(rank: int) -> None:
        try:
            hook = PsHook.from_config(ps, models[0], LAYOUT.buckets, exactly_once=False, parallelism=1) if rank == 0 \
                else LoadOnlyPsHook(ps, models[1], LAYOUT.buckets)
            st = SyncTraining(ParallelConfig(sync_steps=True, timeout_s=60), ps, models[rank], [hook], rank, 2, 8,
                              "test-run")
            for ids, dense, y in data[rank::2]:
                st.step(Batch(tf.constant(np.arange(len(y))), tf.constant(y), tf.constant(ids), tf.constant(dense)))
            st.finish()
            hook.close()
        except BaseException as e:
            errors.append(e)

    try:
        threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.shutdown()
    assert not errors, errors
    for n, v in models[0].variables().items():
        np.testing.assert_array_equal(v.numpy(), models[1].variables()[n].numpy(), err_msg=n)
    for n, v in models[0].dense_optimizer_state().items():
        np.testing.assert_array_equal(v.numpy(), models[1].dense_optimizer_state()[n].numpy(), err_msg=n)
