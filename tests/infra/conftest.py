"""tests/infra: the deployable artefacts (`make package`) and the client-side auth plug-in."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "infra: packages the AWS deployment and lints it (~10 s warm; deselect with -m 'not infra')"
    )
