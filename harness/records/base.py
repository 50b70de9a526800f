"""The base of every record: unknown fields are an error, so a misspelt or foreign file is caught.

Non-finite numbers: JSON has none, so a record stores NaN, +inf and -inf as the strings "NaN", "Infinity" and
"-Infinity" (pydantic's `ser_json_inf_nan="strings"`), and every float field reads those strings back (and the bare
NaN/Infinity tokens older files may hold) as the numbers. Never `null`: that would make a float field unreadable.
What a non-finite sample means is the verdict's business (harness.stats.samples: such a run is invalid).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")
