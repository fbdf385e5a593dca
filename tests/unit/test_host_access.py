"""No root through the API by default (issue 11, item 8): the pure rule on a job's effective container."""

from __future__ import annotations

import posixpath
from typing import Any

import pytest

from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.host_access import HostAccess, check
from tests.unit.builders import a_container

NOTHING = HostAccess()


def host_volume(source: str, name: str = "data") -> dict[str, Any]:
    return {"name": name, "host": {"sourcePath": source}}


def refused(container: dict[str, Any], policy: HostAccess = NOTHING, resolve: Any = None) -> str:
    with pytest.raises(InvalidRequest) as info:
        check(container, policy, resolve or (lambda p: p), what="job definition jd:1")
    return str(info.value)


def allowed(container: dict[str, Any], policy: HostAccess = NOTHING, resolve: Any = None) -> bool:
    check(container, policy, resolve or (lambda p: p))
    return True


# -- privileged and devices ------------------------------------------------------------------------------------


def test_a_privileged_container_is_refused_naming_the_field_and_the_flag() -> None:
    message = refused(a_container(privileged=True))

    assert message.startswith("containerProperties.privileged: job definition jd:1 asks for a privileged container")
    assert "batchplane up --allow-privileged" in message


def test_host_devices_are_refused_naming_the_device_and_the_flag() -> None:
    container = a_container(linuxParameters={"devices": [{"hostPath": "/dev/sda", "permissions": ["READ"]}]})

    message = refused(container)

    assert message.startswith("containerProperties.linuxParameters.devices:")
    assert "'/dev/sda'" in message and "--allow-privileged" in message


def test_allow_privileged_accepts_both() -> None:
    policy = HostAccess(allow_privileged=True)
    container = a_container(privileged=True, linuxParameters={"devices": [{"hostPath": "/dev/fuse"}]})

    assert allowed(container, policy)


@pytest.mark.parametrize("key", ["ipcMode", "pidMode"])
def test_a_tasks_host_namespace_is_refused_without_allow_privileged(key: str) -> None:
    # (a multi-container task's ipcMode/pidMode, checked with each of its containers: control/jobs.py)
    message = refused(a_container(**{key: "host"}))

    assert message.startswith(f"containerProperties.{key}: job definition jd:1 asks for the host's")
    assert "--allow-privileged" in message
    assert allowed(a_container(**{key: "host"}), HostAccess(allow_privileged=True))
    assert allowed(a_container(**{key: "task"}))


@pytest.mark.parametrize(
    "container",
    [
        a_container(),
        a_container(privileged=False),
        a_container(linuxParameters={"devices": [], "initProcessEnabled": True, "sharedMemorySize": 64}),
        a_container(volumes=[{"name": "scratch"}, {"name": "managed", "host": {}}], mountPoints=[]),
    ],
    ids=["plain", "privileged-false", "no-devices", "engine-volumes"],
)
def test_what_reaches_nothing_of_the_host_is_accepted_by_default(container: dict[str, Any]) -> None:
    assert allowed(container)


# -- host paths ------------------------------------------------------------------------------------------------


def test_a_host_path_is_refused_when_no_prefix_is_allowed() -> None:
    container = a_container(volumes=[{"name": "scratch"}, host_volume("/etc")])

    message = refused(container)

    assert message.startswith("containerProperties.volumes[1].host.sourcePath: job definition jd:1 mounts host path")
    assert "'/etc'" in message and "allows host paths: none" in message
    assert "batchplane up --allow-host-path PREFIX" in message


def test_a_host_path_under_an_allowed_prefix_is_accepted_and_the_prefix_itself_too() -> None:
    policy = HostAccess(host_path_prefixes=("/srv/data", "/tmp/jobs"))

    assert allowed(a_container(volumes=[host_volume("/srv/data/in"), host_volume("/tmp/jobs", "b")]), policy)


@pytest.mark.parametrize(
    "source", ["/srv/database", "/srv/dat", "/srv", "/", "/srv/data/../../etc", "srv/data/x", "data/x"]
)
def test_prefixes_are_compared_by_path_components_not_by_string(source: str) -> None:
    policy = HostAccess(host_path_prefixes=("/srv/data",))
    # posixpath.normpath resolves `..` as realpath would (there are no symlinks here).
    message = refused(a_container(volumes=[host_volume(source)]), policy, posixpath.normpath)

    assert "only paths under /srv/data" in message


def test_a_symlink_is_judged_by_where_it_points() -> None:
    policy = HostAccess(host_path_prefixes=("/srv/data",))
    links = {"/srv/data/etc-link": "/etc", "/home/me/data": "/srv/data/mine"}

    def resolve(path: str) -> str:
        return links.get(path, path)

    assert refused(a_container(volumes=[host_volume("/srv/data/etc-link")]), policy, resolve)
    assert allowed(a_container(volumes=[host_volume("/home/me/data")]), policy, resolve)


def test_every_volume_is_checked_and_the_first_refused_is_named() -> None:
    policy = HostAccess(host_path_prefixes=("/srv/data",))
    container = a_container(volumes=[host_volume("/srv/data/a"), host_volume("/var/run/docker.sock", "sock")])

    assert refused(container, policy).startswith("containerProperties.volumes[1].host.sourcePath:")


def test_allow_privileged_does_not_allow_host_paths() -> None:
    policy = HostAccess(allow_privileged=True)

    assert "volumes[0].host.sourcePath" in refused(a_container(volumes=[host_volume("/")]), policy)
