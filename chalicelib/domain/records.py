"""`replace` for the domain's frozen dataclasses, without `dataclasses.replace`'s cost.

`dataclasses.replace` builds the copy through the class's generated `__init__`, passing every field: about 19 µs for
a `Job` (40-odd fields) on this machine, and one finished array child took 17 of them (the lifecycle's transitions,
the store's version bump, the launcher's report): a seventh of the local engine's Python time per child in
`make bench WORKLOAD=array-1000000`. For a dataclass whose `__init__` only assigns (no `__post_init__`, no
`init=False` field, no slots, no cached_property) the copy is the instance's attribute dict with the changes
applied, which is the same object `__init__` would have built: ~1.5 µs.

Same contract as `dataclasses.replace`: a keyword that is not a field raises TypeError; a class that needs its
`__init__` goes through `dataclasses.replace`. mypy checks the call sites against `dataclasses.replace`'s signature
(its dataclasses plugin checks the field names), so this module is typed as that function.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any

__all__ = ["replace"]

_PLAIN: dict[type, frozenset[str] | None] = {}  # class -> its field names, or None when `__init__` is needed


def _plain_fields(cls: type) -> frozenset[str] | None:
    if cls not in _PLAIN:
        fields = dataclasses.fields(cls)
        # (an InitVar is not a field, and is only used by a __post_init__). A cached_property keeps its value in the
        # instance's dict: copied, it would describe the original's fields, not the copy's.
        cached = any(isinstance(v, functools.cached_property) for k in cls.__mro__ for v in vars(k).values())
        simple = (
            not hasattr(cls, "__post_init__")
            and not hasattr(cls, "__slots__")
            and all(f.init for f in fields)
            and not cached
        )
        _PLAIN[cls] = frozenset(f.name for f in fields) if simple else None
    return _PLAIN[cls]


def _replace(obj: Any, /, **changes: Any) -> Any:
    cls = type(obj)
    names = _plain_fields(cls)
    if names is None:
        return dataclasses.replace(obj, **changes)
    if not names.issuperset(changes):
        unknown = sorted(changes.keys() - names)[0]
        raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument {unknown!r}")
    new = object.__new__(cls)
    # A frozen dataclass forbids setattr, not setting its dict through object's (dataclasses' own __init__ writes
    # the dict too).
    object.__setattr__(new, "__dict__", {**obj.__dict__, **changes})
    return new


if TYPE_CHECKING:
    from dataclasses import replace as replace
else:
    replace = _replace
