"""The standalone cluster the tests of this package share (one per module: each start costs seconds)."""

import pytest

from flinkdl.cluster.standalone import LocalCluster
from flinkdl.devtools.net import listening


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if listening(8081):
        pytest.skip("port 8081 is taken: another Flink cluster is running")
    c = LocalCluster(tmp_path_factory.mktemp("cluster"))
    c.start()
    yield c
    c.stop()
