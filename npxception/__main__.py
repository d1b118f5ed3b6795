"""`python -m npxception ...`: the same as the `npxception` command."""

import sys

from .cli import main

sys.exit(main())
