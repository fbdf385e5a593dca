"""ARNs of Batch resources: building and parsing. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain.errors import InvalidRequest

KINDS = ("compute-environment", "job-queue", "job-definition", "job", "scheduling-policy", "consumable-resource")


@dataclass(frozen=True)
class Arn:
    region: str
    account: str
    kind: str
    resource: str  # name, name:revision for job definitions, job id for jobs

    def __str__(self) -> str:
        return f"arn:aws:batch:{self.region}:{self.account}:{self.kind}/{self.resource}"


def build(region: str, account: str, kind: str, resource: str) -> str:
    return str(Arn(region, account, kind, resource))


def parse(value: str, field: str = "resourceArn") -> Arn:
    """Parse a Batch ARN or raise InvalidRequest naming `field`."""
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "batch" or "/" not in parts[5]:
        raise InvalidRequest(f"{field} must be a Batch ARN (arn:aws:batch:<region>:<account>:<type>/<name>)")
    kind, _, resource = parts[5].partition("/")
    if kind not in KINDS:
        raise InvalidRequest(f"{field} names an unsupported resource type {kind!r}; expected one of {', '.join(KINDS)}")
    if not resource:
        raise InvalidRequest(f"{field} must name a {kind} after '{kind}/'; the ARN ends at the resource type")
    return Arn(region=parts[3], account=parts[4], kind=kind, resource=resource)


def looks_like_arn(value: str) -> bool:
    return value.startswith("arn:")
