"""Reading the harness's own JSON files: one place for the checks every reader makes and the errors it gives.

Every reader is bounded: a file larger than MAX_FILE_BYTES is refused before it is read (a results file of the
largest soak the scenario allows is far below it), so a hostile or runaway file costs one `stat`, not the memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.records.exits import UserError

M = TypeVar("M", bound=BaseModel)

# 1e6 frames (the scenario's maximum) x a few stages x ~20 bytes a number, with room to spare.
MAX_FILE_BYTES = int(os.environ.get("HARNESS_MAX_FILE_BYTES", 512 * 2**20))


class ResultsFileError(UserError):
    """A results or fleet file that cannot be read as one: the message names the file and the field."""


def read_schema_json(path: Path, default_name: str, schema_name: str, what: str,
                     error: type[ResultsFileError] = ResultsFileError) -> tuple[Path, dict[str, Any]]:
    """The JSON object in `path` (or `path/default_name`), checked to carry `schema_name`."""
    if path.is_dir():
        path = path / default_name
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise error(f"{path}: {size / 2**20:.0f} MiB is larger than any {what} file the harness writes "
                        f"(limit {MAX_FILE_BYTES / 2**20:.0f} MiB, HARNESS_MAX_FILE_BYTES)")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise error(f"{path}: a folder without {default_name}, not a {what} file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); harness {what} files are UTF-8 "
                    "JSON") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (RecursionError, ValueError) as exc:  # nesting too deep, numbers too long
        raise error(f"{path}: not a readable JSON file ({type(exc).__name__})") from None
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
    except (RecursionError, ValueError, TypeError) as exc:  # a validator that met something it cannot read
        raise error(f"{path}: not a valid {what} file ({type(exc).__name__}: {str(exc)[:200]})") from None
