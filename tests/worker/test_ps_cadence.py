"""How often a worker pushes and commits (:func:`flinkdl.worker.ps_sync.cadence`)."""

from flinkdl.config.schema import PsConfig
from flinkdl.worker.ps_sync import SINGLE_WRITER_PUSH_EVERY, cadence


def test_a_single_writer_pushes_less_often_and_keeps_the_version_cadence() -> None:
    ps = PsConfig(enabled=True)
    assert cadence(ps, single_writer=True, commit_every_push=False) == (SINGLE_WRITER_PUSH_EVERY, 1)
    assert cadence(ps, single_writer=False, commit_every_push=False) == (10, 10)
    own = PsConfig(enabled=True, single_writer_push_every_batches=50)
    assert cadence(own, single_writer=True, commit_every_push=False) == (50, 2)


def test_an_explicit_push_interval_and_exactly_once_keep_push_every_batches() -> None:
    ps = PsConfig(enabled=True, push_every_batches=3, commit_every_pushes=4)
    assert cadence(ps, single_writer=True, commit_every_push=False) == (3, 4)
    assert cadence(PsConfig(enabled=True), single_writer=True, commit_every_push=True) == (10, 1)
