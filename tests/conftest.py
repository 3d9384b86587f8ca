"""Shared test settings: property-based tests use a fixed seed so that CI runs repeat exactly.

Set HYPOTHESIS_PROFILE=explore to draw new examples (e.g. before a release).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
