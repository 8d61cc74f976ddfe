"""``python -m densemtl.cli``: the ``densemtl`` command (DDP relaunches use it)."""

import sys

from densemtl.cli import main

sys.exit(main())
