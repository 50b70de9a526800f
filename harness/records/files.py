"""Reading the harness's own JSON files: one place for the checks every reader makes and the errors it gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ResultsFileError(Exception):
    """A results or fleet file that cannot be read as one: the message names the file and the field."""


def read_schema_json(path: Path, default_name: str, schema_name: str, what: str,
                     error: type[ResultsFileError] = ResultsFileError) -> tuple[Path, dict[str, Any]]:
    """The JSON object in `path` (or `path/default_name`), checked to carry `schema_name`."""
    if path.is_dir():
        path = path / default_name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("schema_name") != schema_name:
        raise error(f"{path}: not a harness {what} file (schema_name != {schema_name!r})")
    return path, data


def validate_file(model: type[M], data: dict[str, Any], path: Path, what: str,
                  error: type[ResultsFileError] = ResultsFileError) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise error(f"{path}: not a valid {what} file: " + "; ".join(problems) + more) from None
