"""`batchplane triggers create --file F | list | describe NAME | delete NAME`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chalicelib.console.client import Api, CliError
from chalicelib.console.views import when


def _source(trigger: dict[str, Any]) -> str:
    source = trigger.get("source", {})
    if "s3" in source:
        s3 = source["s3"]
        return f"s3://{s3['bucket']}/{s3.get('prefix', '')}*{s3.get('suffix', '')}"
    schedule = source.get("schedule", {})
    return f"{schedule.get('expression')} {schedule.get('timezone', 'UTC')}"


def _local_hint(trigger: dict[str, Any]) -> str | None:
    s3 = trigger.get("source", {}).get("s3")
    if s3 is None:
        return None
    return f"locally, drop files into <state-dir>/buckets/{s3['bucket']}/{s3.get('prefix', '')}"


def create(api: Api, console: Console, path: str) -> int:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None
    try:
        definition = json.loads(text)
    except ValueError as e:
        raise CliError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(definition, dict):
        raise CliError(f"{path} must hold one trigger definition (a JSON object)")
    created = api.call("CreateTrigger", definition)
    console.print(f"created trigger {created['triggerName']} ({created['triggerArn']})", markup=False)
    described = api.call("DescribeTrigger", {"triggerName": created["triggerName"]})["trigger"]
    hint = _local_hint(described)
    if hint:
        console.print(hint, markup=False)
    if "nextFireAt" in described:
        console.print(f"next fire: {when(described['nextFireAt'])}", markup=False)
    return 0


def list_all(api: Api, console: Console) -> int:
    table = Table(title="triggers", title_justify="left")
    for column in ("Name", "Source", "Job queue", "Job definition", "Job name", "Next fire"):
        table.add_column(column)
    token: str | None = None
    count = 0
    while True:
        page = api.call("ListTriggers", {"nextToken": token} if token else {})
        for t in page.get("triggers", []):
            count += 1
            next_fire = when(t["nextFireAt"]) if "nextFireAt" in t else "on new objects"
            table.add_row(t["triggerName"], _source(t), t["jobQueue"], t["jobDefinition"], t["jobName"], next_fire)
        token = page.get("nextToken")
        if not token:
            break
    if count:
        console.print(table)
    else:
        console.print("no triggers; create one with: batchplane triggers create --file trigger.json")
    return 0


def describe(api: Api, console: Console, name: str) -> int:
    trigger = api.call("DescribeTrigger", {"triggerName": name})["trigger"]
    console.print_json(json.dumps(trigger))
    return 0


def delete(api: Api, console: Console, name: str) -> int:
    api.call("DeleteTrigger", {"triggerName": name})
    console.print(f"deleted trigger {name}", markup=False)
    return 0
