"""Fixtures shared by every test directory."""

from tests.docker_support import docker_engine

__all__ = ["docker_engine"]
