"""The parent's side of the wire: a worker's plain JSON validated into the wire dataclasses (pydantic)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")


class WireError(ValueError):
    """A worker wrote something that is not the contract: named, never a traceback."""


@lru_cache(maxsize=None)
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def parse_wire(cls: type[T], text: str | bytes) -> T:
    try:
        return _adapter(cls).validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise WireError(f"invalid {cls.__name__} from a worker at {where}: {first['msg']} "
                        f"({exc.error_count()} problem(s))") from None


def wire_from_python(cls: type[T], value: Any) -> T:
    return _adapter(cls).validate_python(value)
