"""Builds the Services the app runs on: set explicitly by the local runtime, or lazily from the environment on AWS.

Settings are read once here; boto3 clients are created lazily, never at import.
"""

from __future__ import annotations

import os
import threading

from chalicelib.control.context import Services, Settings
from chalicelib.store.repository import Repository

_lock = threading.Lock()
_services: Services | None = None


def configure(services: Services | None) -> None:
    """Install the services the app uses (the local runtime and tests call this)."""
    global _services
    with _lock:
        _services = services


def services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                _services = from_environment()
    return _services


def settings_from_environment() -> Settings:
    return Settings(
        account=os.environ.get("BATCHPLANE_ACCOUNT_ID", "123456789012"),
        default_region=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
    )


def from_environment() -> Services:
    """The AWS deployment: DynamoDB table named by BATCHPLANE_TABLE."""
    from chalicelib.store.dynamo import DynamoItemStore

    settings = settings_from_environment()
    table = os.environ["BATCHPLANE_TABLE"]
    store = DynamoItemStore(table, region=settings.default_region, host=os.environ.get("BATCHPLANE_DYNAMODB_ENDPOINT"))
    return Services(repo=Repository(store), settings=settings)
