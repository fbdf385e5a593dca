"""The serverless e2e test's table of AWS calls per job, printed in the run's summary (tests/functional/conftest.py)."""

from __future__ import annotations

import pytest

CALL_REPORT = pytest.StashKey[list[str]]()
