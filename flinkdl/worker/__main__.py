import sys

if sys.argv[1:2] == ["--warm"]:
    from flinkdl.worker.warm import main as warm_main

    sys.exit(warm_main(sys.argv[2:]))

from flinkdl.worker.process import main

sys.exit(main())
