"""Entry point: ``PYTHON -m arbiter_worker [OPTIONS] APP``, started by the arbiter."""

import sys

from arbiter_worker.main import main

sys.exit(main())
