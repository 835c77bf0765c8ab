import sys

from flinkdl.worker.process import main

sys.exit(main())
