"""The Docker side of container credentials (compute/credentials.py; docs/adr/0017): the network whose gateway is
ECS's credentials address, and which container on it holds a given credentials URI.

SDKs fetch `http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (port 80), or
`$AWS_CONTAINER_CREDENTIALS_FULL_URI` over plain http only on a loopback address or ECS's and EKS's own (169.254.170.2,
169.254.170.23, fd00:ec2::23), on any port (docs/adr/0037). A bridge network whose *gateway* is 169.254.170.2 puts that
address on the host's bridge interface as soon as the network exists (measured: Docker 20.10 creates the bridge and
assigns the gateway address at network create, before any container joins), so the server itself can listen there and
a container on the network reaches it. AWS's amazon-ecs-local-container-endpoints does the same with a sidecar
container at .2 and the gateway at .1.
"""

from __future__ import annotations

import logging
from typing import Any

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

log = logging.getLogger("batchplane.credentials")

ECS_CREDENTIALS_ADDRESS = "169.254.170.2"
NETWORK_NAME = "batchplane-credentials"
SUBNET = "169.254.170.0/24"
LABEL = "batchplane.credentials"  # marks the network as batchplane's (every server on the engine shares it)
RELATIVE_URI_VAR = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
FULL_URI_VAR = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
ECS_PORT = 80  # the port of http://169.254.170.2<relative uri>


def container_variable(port: int, path: str) -> tuple[str, str]:
    """The variable (and its value) that points a container at `path` on the endpoint listening on ECS's address at
    `port`: the relative URI, as ECS sets it, on port 80; else the full URI, which names the port."""
    if port == ECS_PORT:
        return RELATIVE_URI_VAR, path
    return FULL_URI_VAR, f"http://{ECS_CREDENTIALS_ADDRESS}:{port}{path}"


class NetworkUnavailable(Exception):
    """The credentials network cannot be used; the message says why (it is logged as the reason)."""


def _gateways(attrs: dict[str, Any]) -> list[str]:
    return [c.get("Gateway", "") for c in (attrs.get("IPAM") or {}).get("Config") or []]


def ensure_network(client: docker.APIClient, name: str = NETWORK_NAME) -> str:
    """The id of the credentials network, created when missing; idempotent, and safe when two servers sharing an
    engine race to create it (the loser finds the winner's). Raises NetworkUnavailable when a network of that name
    has another gateway, or another network holds the subnet."""
    reason = ""
    for attempt in range(2):
        found: list[dict[str, Any]] = client.networks(names=[name])
        exact = [n for n in found if n.get("Name") == name]  # `names` filters by substring
        if exact:
            attrs = exact[0]
            if ECS_CREDENTIALS_ADDRESS not in _gateways(attrs):
                raise NetworkUnavailable(
                    f"the Docker network {name!r} exists with gateway {_gateways(attrs)} instead of "
                    f"{ECS_CREDENTIALS_ADDRESS}; remove it (`docker network rm {name}`) to let batchplane recreate it"
                )
            return str(attrs["Id"])
        if attempt:
            break
        try:
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=SUBNET, gateway=ECS_CREDENTIALS_ADDRESS)])
            created = client.create_network(
                name,
                driver="bridge",
                ipam=ipam,
                labels={LABEL: "1"},
                check_duplicate=True,
                attachable=True,
                # no traffic between containers; they still reach the host (the gateway). Not a defence against
                # forged layer-2 frames (moby#36355): containers on it run without NET_RAW (compute/docker.py).
                # A network created by an earlier version keeps its options (ICC on) until it is removed.
                options={"com.docker.network.bridge.enable_icc": "false"},
            )
            log.info("created the Docker network %s (%s, gateway %s)", name, SUBNET, ECS_CREDENTIALS_ADDRESS)
            return str(created["Id"])
        except docker.errors.APIError as e:
            # Another server created it first (409), or another network holds the subnet: look again.
            log.debug("creating the Docker network %s failed: %s", name, e.explanation or e)
            reason = str(e.explanation or e)
    raise NetworkUnavailable(
        f"the Docker network {name!r} ({SUBNET}, gateway {ECS_CREDENTIALS_ADDRESS}) could not be created: {reason}"
    )


def container_at(client: docker.APIClient, network_id: str, address: str) -> str | None:
    """The id of the container at `address` on the network (None: none is, or Docker did not answer)."""
    try:
        endpoints = client.inspect_network(network_id).get("Containers") or {}
    except docker.errors.DockerException as e:
        log.warning("could not ask Docker which container is at %s: %s", address, e)
        return None
    for container_id, endpoint in endpoints.items():
        if str(endpoint.get("IPv4Address", "")).split("/")[0] == address:
            return str(container_id)
    return None


def holds_uri(client: docker.APIClient, container_id: str, var: str, uri: str) -> bool:
    """Was the container given `var=uri` in its environment? The launcher puts the variable a grant returned into
    the environment of the attempt's container, so the container holding it is, by construction, the one the
    credentials were granted to."""
    try:
        env = client.inspect_container(container_id).get("Config", {}).get("Env") or []
    except docker.errors.DockerException as e:
        log.warning("could not inspect the container %s: %s", container_id[:12], e)
        return False
    return f"{var}={uri}" in env
