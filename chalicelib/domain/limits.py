"""AWS Batch's quotas as values (spec §7): `Limits`, AWS's defaults, and the ones an operator may lift
(`batchplane up --limit NAME=VALUE`, BATCHPLANE_LIMITS, the stack parameter `Limits`). Pure.

The rules that apply them are in domain/validation.py (which re-exports these names)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Limits:
    """AWS Batch's quotas (spec §7); the defaults are AWS's own."""

    max_ces_per_queue: int = 3
    max_dependencies: int = 20
    min_array_size: int = 2
    max_array_size: int = 10_000
    max_attempts: int = 10
    max_evaluate_on_exit: int = 5
    min_timeout_seconds: int = 60
    max_job_definition_bytes: int = 24 * 1024
    max_submit_bytes: int = 30 * 1024
    max_tags: int = 50
    max_reason_chars: int = 1024
    max_describe_jobs: int = 100
    max_batch_cancel: int = 50
    max_page_size: int = 100


# The quotas an operator may lift (`batchplane up --limit NAME=VALUE`, the stack parameter `Limits`; README "Beyond
# AWS Batch"): name -> (Limits field, the bound it may be set to). A maximum may only be raised and a minimum only
# lowered, so whatever passes on AWS passes on batchplane. The others stay AWS's: tags (ECS takes at most 50 on a
# task, and propagateTags copies them there), page and batch sizes (one Lambda response, one request's work).
SETTABLE_LIMITS: dict[str, tuple[str, int]] = {
    "max-array-size": ("max_array_size", 1_000_000),  # INDEX_WIDTH (store/jobs.py) holds 7 digits
    "max-dependencies": ("max_dependencies", 1_000),
    "max-ces-per-queue": ("max_ces_per_queue", 20),
    "max-attempts": ("max_attempts", 100),  # every attempt stays in the job's record (DynamoDB: 400 KB an item)
    "max-evaluate-on-exit": ("max_evaluate_on_exit", 50),
    "min-timeout-seconds": ("min_timeout_seconds", 1),
    "max-job-definition-bytes": ("max_job_definition_bytes", 128 * 1024),  # a job holds its definition's container
    "max-submit-bytes": ("max_submit_bytes", 128 * 1024),  # + the submit: both in one 400 KB record
}


def parse_limits(settings: Iterable[str], base: Limits | None = None) -> Limits:
    """`Limits` with each "name=value" of `settings` applied (names of SETTABLE_LIMITS); ValueError whose message
    names the setting and its bounds. Empty entries are skipped (an empty stack parameter sets nothing)."""
    limits = base or Limits()
    changes: dict[str, int] = {}
    for setting in settings:
        setting = setting.strip()
        if not setting:
            continue
        name, sep, raw = setting.partition("=")
        name = name.strip().lower().replace("_", "-")
        if not sep or name not in SETTABLE_LIMITS:
            raise ValueError(f"limit {setting!r}: must be NAME=VALUE with NAME one of {', '.join(SETTABLE_LIMITS)}")
        attr, bound = SETTABLE_LIMITS[name]
        aws = getattr(Limits(), attr)
        low, high = (bound, aws) if name.startswith("min-") else (aws, bound)
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"limit {name}: must be an integer; got {raw.strip()!r}") from None
        if not low <= value <= high:
            raise ValueError(f"limit {name}: must be between {low} and {high} (AWS's quota: {aws}); got {value}")
        changes[attr] = value
    return replace(limits, **changes)


def limits_from_text(text: str | None) -> Limits:
    """The limits of a comma- or space-separated "name=value" list (BATCHPLANE_LIMITS, the stack's `Limits`)."""
    return parse_limits(re.split(r"[,\s]+", text or ""))


def limit(attr: str) -> str:
    """Names the settable limit behind a rule, for its message: " (limit max-array-size)"."""
    return next((f" (limit {name})" for name, (a, _) in SETTABLE_LIMITS.items() if a == attr), "")
