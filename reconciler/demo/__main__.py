"""``python -m reconciler.demo`` (``make demo``)."""

import sys

from reconciler.demo.real import main

sys.exit(main())
