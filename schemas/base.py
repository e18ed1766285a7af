"""The strict base model every wire message derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Strict, closed and immutable: no coercion, no unknown fields, no mutation after parsing."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)
