"""The cold-start worker: ``python -m clsviz.bench --cold-start BUNDLE MODE OPTIONS_JSON``."""

import sys

from .cold import _cold_worker

if len(sys.argv) == 5 and sys.argv[1] == "--cold-start":
    _cold_worker(*sys.argv[2:])
else:
    sys.exit(
        "usage: python -m clsviz.bench --cold-start BUNDLE MODE OPTIONS_JSON "
        "(the user-facing command is `python -m clsviz bench`)"
    )
