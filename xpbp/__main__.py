"""`python -m xpbp`: the same as the `xpbp` command."""

import sys

from .cli import main

sys.exit(main())
