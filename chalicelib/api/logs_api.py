"""The CloudWatch Logs wire (JSON 1.1) over the LogStore, so stock `boto3.client("logs")` reads local job logs.

botocore sends `POST /` with `X-Amz-Target: Logs_20140328.<Operation>` and a JSON body. Supported: GetLogEvents,
FilterLogEvents, DescribeLogStreams, DescribeLogGroups, on the one log group /aws/batch/job.

Differences from CloudWatch Logs, by design or not yet built:
- filterPattern: only the term forms: empty (everything), plain terms (all must appear, case-sensitive substrings),
  "quoted phrases", `?term` (at least one ?-term must appear) and `-term` (must not appear). JSON (`{ $.x ...}`),
  space-delimited (`[a, b]`) and regex (`%...%`) patterns are rejected with InvalidParameterException.
- FilterLogEvents over several streams returns each stream's events in turn (by stream name), not interleaved by time;
  it scans at most SCAN_BUDGET events per call and then returns a nextToken (possibly with few or no events), as
  CloudWatch does when a search runs long. Named streams that do not exist are skipped. eventIds are stable digests of
  (stream, timestamp, ingestion time, message, occurrence in the page), not storage positions.
- Responses are not capped at 1 MB; `unmask`, `interleaved`, account/linked-account members are ignored;
  DescribeLogStreams omits lastIngestionTime (the LogStore does not record it) and reports storedBytes 0.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
import zlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from chalicelib.api.errors import Response
from chalicelib.api.gateway import json_object, region_of
from chalicelib.api.logs_members import (
    LogsError,
    Scope,
    bool_member,
    check_group,
    decode_token,
    encode_token,
    int_member,
    invalid,
    not_found,
    page_limit,
    text_member,
)
from chalicelib.compute.logs_port import LOG_GROUP, LogEvent, LogStore
from chalicelib.control.context import Services
from chalicelib.domain import digits

log = logging.getLogger("batchplane.api.logs")

TARGET_PREFIX = "Logs_20140328."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_EVENTS = 10_000
MAX_DESCRIBE = 50
SCAN_BUDGET = 500_000  # events one FilterLogEvents call may examine before it returns a nextToken
_CHUNK = 10_000


Handler = Callable[[LogStore, dict[str, Any], Scope], dict[str, Any]]


def handle_logs(svc: Services, headers: Mapping[str, str], body: bytes | str | None) -> Response:
    request_id = str(uuid.uuid4())
    try:
        target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "")
        handler = _OPERATIONS.get(target[len(TARGET_PREFIX) :]) if target.startswith(TARGET_PREFIX) else None
        if handler is None:
            raise LogsError("UnknownOperationException", f"Unknown operation {target or '(no X-Amz-Target)'}")
        request = _parse_body(body)
        if svc.logs is None:
            raise not_found("Job logs are in CloudWatch Logs for this deployment; use the CloudWatch Logs endpoint")
        scope = Scope(region=region_of(headers, svc.settings.default_region), account=svc.settings.account)
        result = handler(svc.logs, request, scope)
        return 200, {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id}, json.dumps(result)
    except LogsError as exc:
        return _error(exc.status, exc.code, str(exc), request_id)
    except Exception as exc:
        log.exception("unhandled error in logs request %s", request_id, exc_info=exc)
        return _error(500, "ServiceUnavailableException", f"Internal error; request id {request_id}", request_id)


def _error(status: int, code: str, message: str, request_id: str) -> Response:
    headers = {"Content-Type": CONTENT_TYPE, "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id}
    return status, headers, json.dumps({"__type": code, "message": message})


def _parse_body(body: bytes | str | None) -> dict[str, Any]:
    return json_object(body, partial(LogsError, "SerializationException"))


# -- GetLogEvents ------------------------------------------------------------------------------------------------


def get_log_events(store: LogStore, req: dict[str, Any], scope: Scope) -> dict[str, Any]:
    check_group(req)
    stream = text_member(req, "logStreamName", required=True)
    assert stream is not None
    if not store.exists(stream):
        raise not_found(f"The specified log stream does not exist: {stream}")
    limit = page_limit(req, MAX_EVENTS)
    start, end = int_member(req, "startTime"), int_member(req, "endTime")
    token = text_member(req, "nextToken")
    if token is None:
        forward = bool_member(req, "startFromHead")
        offset = 0 if forward else -1
    else:
        direction, _, text = token.partition("/")
        parsed = digits.parse(text)
        if direction not in ("f", "b") or parsed is None:
            raise invalid("The specified nextToken is invalid")
        forward, offset = direction == "f", parsed
    try:
        events, ahead, behind = store.read(
            stream, start_time=start, end_time=end, offset=offset, limit=limit, from_head=forward
        )
    except ValueError as exc:
        raise invalid("The specified nextToken is invalid" if token else str(exc)) from None
    return {
        "events": [_event_json(e) for e in events],
        "nextForwardToken": f"f/{ahead}",
        "nextBackwardToken": f"b/{behind}",
    }


def _event_json(e: LogEvent) -> dict[str, Any]:
    return {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time}


# -- FilterLogEvents ---------------------------------------------------------------------------------------------

_TERM = re.compile(r'\s*([?-]?)(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))')
_UNSUPPORTED_PATTERN = 'batchplane supports only term filter patterns (terms, "phrases", ?term, -term)'


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A matcher for the term forms of the filter pattern syntax (see the module docstring)."""
    text = pattern.strip()
    if not text:
        return lambda message: True
    if text[0] in "{[%":
        raise invalid(f"{_UNSUPPORTED_PATTERN}; got {pattern!r}")
    required: list[str] = []
    optional: list[str] = []
    excluded: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TERM.match(text, pos)
        if match is None:
            raise invalid(f"Invalid filter pattern {pattern!r}")
        quoted, bare = match.group(2), match.group(3)
        term = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        {"": required, "?": optional, "-": excluded}[match.group(1)].append(term)
        pos = match.end()

    def matches(message: str) -> bool:
        return (
            all(t in message for t in required)
            and not any(t in message for t in excluded)
            and (not optional or any(t in message for t in optional))
        )

    return matches


def _event_id(stream: str, timestamp: int, ingestion: int, message: str, occurrence: int) -> str:
    digest = zlib.crc32(f"{stream}\0{message}".encode("utf-8", "replace"))
    return f"{max(timestamp, 0):015d}{max(ingestion, 0):015d}{digest:010d}{occurrence:04d}"


def filter_log_events(store: LogStore, req: dict[str, Any], scope: Scope) -> dict[str, Any]:
    check_group(req)
    names_given, prefix = req.get("logStreamNames"), text_member(req, "logStreamNamePrefix")
    if names_given is not None and prefix is not None:
        raise invalid("Specify logStreamNames or logStreamNamePrefix, not both")
    if names_given is not None:
        if not isinstance(names_given, list) or not 1 <= len(names_given) <= 100:
            raise invalid("logStreamNames must be a list of 1 to 100 names")
        if not all(isinstance(n, str) and n for n in names_given):
            raise invalid("logStreamNames must be non-empty strings")
        names = sorted({n for n in names_given if store.exists(n)})
    else:
        names = [s[0] for s in store.streams(prefix)]
    pattern = req.get("filterPattern", "")
    if not isinstance(pattern, str) or len(pattern) > 1024:
        raise invalid("filterPattern must be a string of at most 1024 characters")
    match = compile_pattern(pattern)
    limit = page_limit(req, MAX_EVENTS)
    start, end = int_member(req, "startTime"), int_member(req, "endTime")
    token = decode_token(text_member(req, "nextToken"))
    resume: tuple[str, int] | None = None
    if token is not None:
        stream, offset = token.get("s"), token.get("o")
        if not isinstance(stream, str) or not isinstance(offset, int):
            raise invalid("The specified nextToken is invalid")
        resume = (stream, offset)

    out: list[dict[str, Any]] = []
    searched: list[dict[str, Any]] = []
    seen: dict[tuple[str, int, int, str], int] = {}
    budget = SCAN_BUDGET
    next_token: str | None = None
    for name in names:
        offset = 0
        if resume is not None:
            if name < resume[0]:
                continue
            if name == resume[0]:
                offset = resume[1]
        if len(out) >= limit or budget <= 0:
            next_token = encode_token({"s": name, "o": offset})
            break
        done = False
        step = max(64, 2 * (limit - len(out)))  # a small limit reads little; sparse matches double the step
        while not done and len(out) < limit and budget > 0:
            chunk = min(_CHUNK, budget, step)
            step *= 2
            try:
                events, ahead, _ = store.read(
                    name, start_time=start, end_time=end, offset=offset, limit=chunk, from_head=True
                )
            except ValueError:
                raise invalid("The specified nextToken is invalid") from None
            done = len(events) < chunk
            hits = [i for i, e in enumerate(events) if match(e.message)]
            room = limit - len(out)
            if len(hits) > room:
                # Stop right after the last event that fits, so the next page starts with the first that did not.
                events, ahead, _ = store.read(
                    name, start_time=start, end_time=end, offset=offset, limit=hits[room - 1] + 1, from_head=True
                )
                hits, done = hits[:room], False
            budget -= len(events)
            for i in hits:
                e = events[i]
                key = (name, e.timestamp, e.ingestion_time, e.message)
                seen[key] = occurrence = seen.get(key, -1) + 1
                event_id = _event_id(name, e.timestamp, e.ingestion_time, e.message, occurrence)
                out.append({"logStreamName": name, **_event_json(e), "eventId": event_id})
            offset = ahead
        searched.append({"logStreamName": name, "searchedCompletely": done})
        if not done:
            next_token = encode_token({"s": name, "o": offset})
            break
    result: dict[str, Any] = {"events": out, "searchedLogStreams": searched}
    if next_token is not None:
        result["nextToken"] = next_token
    return result


# -- DescribeLogStreams / DescribeLogGroups ----------------------------------------------------------------------


def describe_log_streams(store: LogStore, req: dict[str, Any], scope: Scope) -> dict[str, Any]:
    check_group(req)
    prefix = text_member(req, "logStreamNamePrefix")
    order = req.get("orderBy", "LogStreamName")
    if order not in ("LogStreamName", "LastEventTime"):
        raise invalid("orderBy must be LogStreamName or LastEventTime")
    if order == "LastEventTime" and prefix is not None:
        raise invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
    descending = bool_member(req, "descending")
    limit = page_limit(req, MAX_DESCRIBE)
    token = decode_token(text_member(req, "nextToken"))
    streams = store.streams(prefix)
    if order == "LastEventTime":
        streams.sort(key=lambda s: (s[3] if s[3] is not None else s[1], s[0]), reverse=descending)
        start = token.get("i", 0) if token is not None else 0
        if not isinstance(start, int) or start < 0:
            raise invalid("The specified nextToken is invalid")
        page, more = streams[start : start + limit], start + limit < len(streams)
        next_token: dict[str, Any] = {"i": start + limit}
    else:
        if descending:
            streams.reverse()
        if token is not None:
            after = token.get("n")
            if not isinstance(after, str):
                raise invalid("The specified nextToken is invalid")
            streams = [s for s in streams if (s[0] < after if descending else s[0] > after)]
        page, more = streams[:limit], len(streams) > limit
        next_token = {"n": page[-1][0]} if page else {}
    result: dict[str, Any] = {"logStreams": [_stream_json(s, scope) for s in page]}
    if more:
        result["nextToken"] = encode_token(next_token)
    return result


def _stream_json(stream: tuple[str, int, int | None, int | None], scope: Scope) -> dict[str, Any]:
    name, created, first, last = stream
    out = {"logStreamName": name, "creationTime": created, "firstEventTimestamp": first, "lastEventTimestamp": last}
    arn = f"{scope.group_arn()}:log-stream:{name}"
    return {k: v for k, v in out.items() if v is not None} | {"arn": arn, "storedBytes": 0}


def describe_log_groups(store: LogStore, req: dict[str, Any], scope: Scope) -> dict[str, Any]:
    prefix, pattern = text_member(req, "logGroupNamePrefix"), text_member(req, "logGroupNamePattern")
    if prefix is not None and pattern is not None:
        raise invalid("Specify logGroupNamePrefix or logGroupNamePattern, not both")
    page_limit(req, MAX_DESCRIBE)
    identifiers = req.get("logGroupIdentifiers")
    if identifiers is not None and not isinstance(identifiers, list):
        raise invalid("logGroupIdentifiers must be a list")
    wanted = (
        (prefix is None or LOG_GROUP.startswith(prefix))
        and (pattern is None or pattern.lower() in LOG_GROUP.lower())
        and (identifiers is None or any(i in (LOG_GROUP, scope.group_arn()) for i in identifiers))
        and req.get("nextToken") is None  # one group: there is never a second page
    )
    if not wanted:
        return {"logGroups": []}
    group: dict[str, Any] = {
        "logGroupName": LOG_GROUP,
        "metricFilterCount": 0,
        "arn": f"{scope.group_arn()}:*",
        "logGroupArn": scope.group_arn(),
        "storedBytes": 0,
        "logGroupClass": "STANDARD",
    }
    created = [s[1] for s in store.streams()]
    if created:
        group["creationTime"] = min(created)
    return {"logGroups": [group]}


_OPERATIONS: dict[str, Handler] = {
    "GetLogEvents": get_log_events,
    "FilterLogEvents": filter_log_events,
    "DescribeLogStreams": describe_log_streams,
    "DescribeLogGroups": describe_log_groups,
}
