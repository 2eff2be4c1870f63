"""`python -m jobs.cli` is the same as `pose-service`."""

import sys

from jobs.cli import main

sys.exit(main())
