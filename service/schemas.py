"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Id = Annotated[str, Field(min_length=1, max_length=256)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Request):
    """Top-k items for a known user, or for a visitor described by ``history``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"user_id": "u0001", "k": 10}, {"history": ["i0007", "i0042"], "k": 5}]
        },
    )

    user_id: Id | None = Field(None, description="External user id; omit it when giving history.")
    history: list[Id] | None = Field(
        None, max_length=10_000, description="Recent item ids of a visitor the model has not seen."
    )
    k: int = Field(20, ge=1, le=1000, description="Number of items to return.")
    exclude_seen: bool = Field(True, description="Skip the user's training (or history) items.")
    exclude_items: list[Id] = Field(
        default_factory=list, max_length=10_000, description="Never return these."
    )
    candidates: int | None = Field(None, ge=1, description="Hamming candidates C (default k x oversample).")
    strict: bool = Field(False, description="Unknown user: 404 instead of popular items.")


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    user_id: str | None
    model_version: str
    cached: bool = False
    fallback: bool = Field(False, description="True when the answer is the popular items.")
    items: list[ScoredItem]


class BatchRequest(_Request):
    """Several known users answered in one batched search."""

    user_ids: list[Id] = Field(min_length=1, max_length=10_000)
    k: int = Field(20, ge=1, le=1000)
    exclude_seen: bool = True
    strict: bool = False


class BatchResponse(BaseModel):
    model_version: str
    results: list[RecommendResponse]


class SimilarRequest(_Request):
    item_id: Id
    k: int = Field(20, ge=1, le=1000)
    candidates: int | None = Field(None, ge=1)


class SimilarResponse(BaseModel):
    item_id: str
    model_version: str
    items: list[ScoredItem]


class ModelResponse(BaseModel):
    model_version: str
    loaded_at: float
    users: int
    items: int
    bits: int
    manifest: dict[str, Any]


class ReloadRequest(_Request):
    version: Id | None = Field(None, description="Load this version; default: the store's current.")


class ReloadResponse(BaseModel):
    model_version: str
    previous_version: str | None


class ErrorResponse(BaseModel):
    detail: str


class HealthResponse(BaseModel):
    status: str
    model_version: str | None = None
    reason: str | None = None
