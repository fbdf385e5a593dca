"""How an `Item` is stored in DynamoDB (store/dynamo.py): its sort keys, its body and its attributes, and a stream
image read back into an `Item`. No I/O.

Sort-key encoding: DynamoDB refuses the empty string as a key attribute (table or index), but the port allows
`sk == ""`. Every stored sort key (`sk`, `g1s`, `g2s`) is therefore the logical one with `MARK` ("#")
prepended, so "" is stored as "#" and "0001#1" as "#0001#1". Prepending one character keeps the UTF-8 byte
order DynamoDB sorts by; `after` and `prefix` get the same prefix. Partition keys are stored as they are
(readable in the console, usable in IAM LeadingKeys conditions); an empty partition key is refused with
InvalidRequest because DynamoDB cannot store it, and reads of one find nothing.

Bodies: a JSON text of at least `COMPRESS_FROM` bytes is stored deflated, as the binary attribute `bz` (a format byte,
then raw DEFLATE with the preset dictionary of that format) instead of the string `body`: DynamoDB bills a write per
started KB of the item, in the table and again in every index whose entry it changes, and a job's ~1.5 KB of JSON
deflates to ~300 bytes (docs/adr/0011). Smaller bodies (edges, most resources) stay readable JSON. Reads accept both,
so items written before stay readable. `image_item` decodes a stream image the same way.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from typing import Any

from chalicelib.domain.errors import InvalidRequest, StoreUnavailable
from chalicelib.store.port import Item

MARK = "#"

# -- compressed bodies ----------------------------------------------------------------------------------------------

COMPRESS_FROM = 400  # bytes of JSON; below, the body stays a readable string
_DEFLATE_V1 = 1  # the format byte of `bz`: raw DEFLATE (wbits -15), level 9, preset dictionary _ZDICT_V1
# What job bodies repeat (store/jobs.py job_body), least common first: DEFLATE finds the rest within 32 KB back, and
# nearer is cheaper. FROZEN: items hold data compressed with it. A better dictionary is a new format byte, with this
# one kept for reading.
_ZDICT_V1 = (
    b'"environment":[{"name":"","value":""}],"mountPoints":[],"volumes":[],"ulimits":[],"linuxParameters":{},'
    b'"logConfiguration":{"logDriver":"awslogs","options":{}},"secrets":[],"jobRoleArn":"arn:aws:iam::'
    b'"fargatePlatformConfiguration":{"platformVersion":"LATEST"},"ephemeralStorage":{"sizeInGiB":'
    b'"runtimePlatform":{"operatingSystemFamily":"LINUX","cpuArchitecture":"X86_64"},"user":"","privileged":false,'
    b'{"attempts":2,"evaluateOnExit":[{"onStatusReason":"Host EC2*","action":"RETRY"},{"onExitCode":"1",'
    b'"onReason":"*","action":"EXIT"}]},{"attemptDurationSeconds":3600}'
    b'"array":{"size":10,"index":null,"parent_id":null,"children_created":0,"succeeded":0,"failed":0,"done_bits":""}'
    b'"depends_on":[{"job_id":"","type":"N_TO_N"},{"job_id":"","type":"SEQUENTIAL"},{"job_id":"","type":null}],'
    b'"Dependent Job failed: ","Job attempt duration exceeded timeout","Your Spot Task was interrupted.",'
    b'"Host EC2 (instance i-","Task failed to start","CannotPullContainerError: ","OutOfMemoryError: Container killed'
    b'"status":"PENDING","status":"RUNNABLE","status":"STARTING","status":"RUNNING","status":"FAILED",'
    b'"platform_capabilities":["EC2"],"vcpus":0.25,"memory":512,"vcpus":2.0,"memory":4096,'
    b'"image":"public.ecr.aws/docker/library/","command":["sh","-c",""],"executionRoleArn":"arn:aws:iam::'
    b':role/batchplane-execution","resourceRequirements":[{"type":"VCPU","value":"1"},{"type":"MEMORY","value":"2048"}],'
    b'"networkConfiguration":{"assignPublicIp":"ENABLED"}},"parameters":{},"retry_strategy":{},"timeout":{},'
    b'"depends_on":[],"pending":[],"array":null,"vcpus":1.0,"memory":2048,"status_reason":null,"reason_since":null,'
    b'"started_at":null,"stopped_at":null,"attempts":[],"current":null,'
    b'{"job_id":"","name":"","arn":"arn:aws:batch:us-east-1:123456789012:job/","queue":"",'
    b'"queue_arn":"arn:aws:batch:us-east-1:123456789012:job-queue/","job_definition_arn":'
    b'"arn:aws:batch:us-east-1:123456789012:job-definition/","job_definition_name":"","status":"SUCCEEDED",'
    b'"created_at":17,"container":{"image":"","command":[],"parameters":{},"retry_strategy":{},"timeout":{},'
    b'"depends_on":[],"pending":[],"array":null,"vcpus":1.0,"memory":2048,"status_reason":null,"reason_since":null,'
    b'"started_at":17,"stopped_at":17,"attempts":[{"number":1,"task_id":"arn:aws:ecs:us-east-1:123456789012:task/'
    b'batchplane/","compute_environment":"","log_stream":"/default/","created_at":17,"started_at":17,'
    b'"stopped_at":17,"exit_code":0,"reason":null,"status_reason":"Essential container in task exited"}],'
    b'"current":{"number":1,"task_id":"","compute_environment":"","log_stream":"/default/","created_at":17,'
    b'"started_at":null,"stopped_at":null,"exit_code":null,"reason":null,"status_reason":null},'
    b'"share_identifier":null,"scheduling_priority":null,"tags":{},"propagate_tags":false,'
    b'"platform_capabilities":["FARGATE"],"is_cancelled":false,"is_terminated":false,"updated_at":17'
)


def encode_body(body: Mapping[str, Any]) -> tuple[str | None, bytes | None]:
    """(body, bz): the JSON text, or its compressed form when it is at least COMPRESS_FROM bytes long."""
    text = json.dumps(body, separators=(",", ":"))
    if len(text) < COMPRESS_FROM:
        return text, None
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=_ZDICT_V1)
    return None, bytes([_DEFLATE_V1]) + deflate.compress(text.encode()) + deflate.flush()


def decode_body(body: str | None, bz: bytes | None) -> dict[str, Any]:
    if bz is None:
        return dict(json.loads(body or "{}"))
    if not bz or bz[0] != _DEFLATE_V1:
        raise StoreUnavailable(f"unknown body format {bz[:1]!r}")
    inflate = zlib.decompressobj(-15, zdict=_ZDICT_V1)
    return dict(json.loads(inflate.decompress(bz[1:]) + inflate.flush()))


# -- keys and attributes --------------------------------------------------------------------------------------------


def enc(sort_key: str) -> str:
    return MARK + sort_key


def dec(stored: str) -> str:
    return stored[len(MARK) :]


def partition(value: str, what: str) -> str:
    if not value:
        raise InvalidRequest(f"{what} must not be empty: DynamoDB cannot store an empty partition key")
    return value


def attributes(item: Item, version: int) -> dict[str, Any]:
    """The stored attributes of `item` but its keys."""
    body, bz = encode_body(item.body)
    attrs: dict[str, Any] = {"version": version, **({"body": body} if bz is None else {"bz": bz})}
    # An absent index key is left out of the PutItem (which replaces the whole item), so the item leaves
    # the sparse index; PynamoDB never writes a None attribute.
    if item.gsi1 is not None:
        attrs["g1p"], attrs["g1s"] = partition(item.gsi1[0], "gsi1 partition"), enc(item.gsi1[1])
    if item.gsi2 is not None:
        attrs["g2p"], attrs["g2s"] = partition(item.gsi2[0], "gsi2 partition"), enc(item.gsi2[1])
    if item.expires_at is not None:
        attrs["ttl"] = item.expires_at
    return attrs


def image(item: Item) -> dict[str, dict[str, str]]:
    """The item as DynamoDB stores it, in DynamoDB JSON as Lambda delivers a stream record's NewImage/OldImage
    (binary values in base64)."""
    attrs: dict[str, Any] = {"pk": item.pk, "sk": enc(item.sk), **attributes(item, item.version)}

    def value(v: Any) -> dict[str, str]:
        if isinstance(v, int):
            return {"N": str(v)}
        if isinstance(v, bytes):
            return {"B": base64.b64encode(v).decode()}
        return {"S": v}

    return {name: value(v) for name, v in attrs.items()}


def image_item(image: Mapping[str, Any]) -> Item:
    """The item a stream image (DynamoDB JSON; binary in base64, as in a Lambda event, or bytes) holds."""

    def text(name: str) -> str | None:
        value = image.get(name)
        return str(value["S"]) if value else None

    bz = (image.get("bz") or {}).get("B")
    body = decode_body(text("body"), base64.b64decode(bz) if isinstance(bz, str) else bz)
    g1p, g1s, g2p, g2s = (text(n) for n in ("g1p", "g1s", "g2p", "g2s"))
    ttl = image.get("ttl")
    return Item(
        pk=str(image["pk"]["S"]),
        sk=dec(str(image["sk"]["S"])),
        body=body,
        version=int(image["version"]["N"]),
        gsi1=(g1p, dec(g1s)) if g1p is not None and g1s is not None else None,
        gsi2=(g2p, dec(g2s)) if g2p is not None and g2s is not None else None,
        expires_at=int(ttl["N"]) if ttl else None,
    )
