"""``flink run -py jobs/online_learning.py --config CONFIG [--set k=v]``: see :mod:`flinkdl.pipeline.__main__`."""
from flinkdl.pipeline.__main__ import main

main()
