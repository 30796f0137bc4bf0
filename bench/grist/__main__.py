"""``python -m bench.grist``: check every GRIST case with numsentry and print the score table.

The table ends with two summary lines: ``detected D/N defects in C/79 cases; extra alarms E;
analysis total S s, median M ms`` and ``extra alarms: R real (witnessed), I imprecision, U
unexplained`` (see ``bench/grist/harness.py``).
"""

from __future__ import annotations

import sys

from bench.grist.harness import main

sys.exit(main())
