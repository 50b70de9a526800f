"""The base of every record: unknown fields are an error, so a misspelt or foreign file is caught."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
