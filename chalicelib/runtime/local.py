"""The local runtime behind `batchplane up`: SQLite state in a directory, the API on a loopback port."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from chalicelib.control.context import Services, Settings
from chalicelib.runtime import wiring
from chalicelib.runtime.server import ApiServer
from chalicelib.store.repository import Repository
from chalicelib.store.sqlite import SqliteItemStore


@dataclass(frozen=True)
class LocalConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    account: str = "123456789012"
    region: str = "us-east-1"


class LocalRuntime:
    def __init__(self, config: LocalConfig) -> None:
        from app import app  # the Chalice app module (installed as a top-level module)

        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(config.state_dir, 0o700)
        self.store = SqliteItemStore(str(config.state_dir / "state.db"))
        self.services = Services(
            repo=Repository(self.store),
            settings=Settings(account=config.account, default_region=config.region),
        )
        wiring.configure(self.services)
        self.server = ApiServer(app, config.host, config.port)

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        """Stop accepting requests, let in-flight ones finish, then close the store (every commit is on disk)."""
        self.server.stop()
        wiring.configure(None)
        self.store.close()
