"""`python -m analytics`: the insights report (see analytics.cli)."""

from __future__ import annotations

import sys

from analytics.cli import main

sys.exit(main())
