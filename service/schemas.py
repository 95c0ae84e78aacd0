"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RecommendRequest(BaseModel):
    """Top-k items for one known user."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"user_id": "u1", "k": 10}]})

    user_id: str = Field(min_length=1, max_length=256, description="External user id.")
    k: int = Field(20, ge=1, le=1000, description="Number of items to return.")


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    user_id: str
    model_version: str
    cached: bool = False
    items: list[ScoredItem]


class ErrorResponse(BaseModel):
    detail: str


class HealthResponse(BaseModel):
    status: str
    model_version: str | None = None
    reason: str | None = None
