"""``python -m flinkdl.cli ARGS``: the same as the ``flinkdl`` script."""

import sys

from flinkdl.cli import main

sys.exit(main())
