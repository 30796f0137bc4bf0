"""``python -m bench.grist``: check every GRIST case with numsentry and print the score table."""

from __future__ import annotations

import sys

from bench.grist.harness import main

sys.exit(main())
