"""domain/records.replace: the same copy as dataclasses.replace, and the same errors."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import pytest

from chalicelib.domain.jobs import RUNNING, ArrayInfo, Attempt, Job
from chalicelib.domain.records import replace
from tests.unit.builders import a_job


def test_a_copy_equals_what_dataclasses_replace_builds() -> None:
    job = a_job(status=RUNNING, current=Attempt(1, "t", "ce", "s", created_at=1))
    changes = {"status_reason": "why", "updated_at": 5, "attempts": (job.current,)}
    ours, theirs = replace(job, **changes), dataclasses.replace(job, **changes)
    assert type(ours) is Job
    assert ours == theirs
    assert vars(ours) == vars(theirs)  # every field, not only those compared
    assert job.status_reason is None  # the original is untouched


def test_a_copy_without_changes_is_equal_but_not_the_same_object() -> None:
    info = ArrayInfo(size=3)
    copy = replace(info)
    assert copy == info and copy is not info


def test_the_copy_stays_frozen() -> None:
    copy = replace(a_job(), name="other")
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.name = "again"  # type: ignore[misc]


def test_a_keyword_that_is_not_a_field_is_refused() -> None:
    with pytest.raises(TypeError, match="'nmae'"):
        replace(a_job(), nmae="typo")  # type: ignore[call-arg]


@dataclass(frozen=True)
class _Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


def test_a_class_with_post_init_is_built_through_its_init() -> None:
    assert replace(_Checked(1), value=2) == _Checked(2)
    with pytest.raises(ValueError, match="negative"):
        replace(_Checked(1), value=-1)


@dataclass(frozen=True)
class _Derived:
    value: int
    double: int = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "double", self.value * 2)


def test_a_field_set_by_init_is_recomputed() -> None:
    assert replace(_Derived(1), value=4).double == 8


@dataclass(frozen=True)
class _Cached:
    value: int

    @functools.cached_property
    def double(self) -> int:
        return self.value * 2


def test_a_cached_property_is_not_copied_with_the_dict() -> None:
    one = _Cached(1)
    assert one.double == 2  # cached in the instance's dict
    assert replace(one, value=5).double == 10
