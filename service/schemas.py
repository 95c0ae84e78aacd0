"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Id = Annotated[str, Field(min_length=1, max_length=256)]


def _integral_float(value: object) -> object:
    """JSON Schema's integer includes 20.0; strict validation would reject it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: Integers as JSON Schema defines them: 20 and 20.0, but not "20", true or 20.5.
K = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_integral_float)]
Candidates = Annotated[int, Field(ge=1, le=10_000), BeforeValidator(_integral_float)]


class _Request(BaseModel):
    # strict: JSON 0 is not false and "5" is not 5; schema-violating input is a 422, not coerced.
    model_config = ConfigDict(extra="forbid", strict=True)


class RecommendRequest(_Request):
    """Top-k items for a known user, or for a visitor described by ``history``."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"user_id": "u0001", "k": 10}, {"history": ["i0007", "i0042"], "k": 5}]
        },
    )

    user_id: Id | None = Field(None, description="External user id; omit it when giving history.")
    history: list[Id] | None = Field(
        None, max_length=1000, description="Recent item ids of a visitor the model has not seen."
    )
    k: K = Field(20, description="Number of items to return.")
    exclude_seen: bool = Field(True, description="Skip the user's training (or history) items.")
    exclude_items: list[Id] = Field(
        default_factory=list, max_length=10_000, description="Never return these."
    )
    candidates: Candidates | None = Field(
        None, description="Hamming candidates C (default k x oversample; capped by settings)."
    )
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

    user_ids: list[Id] = Field(min_length=1, max_length=1000)
    k: K = 20
    exclude_seen: bool = True
    strict: bool = False


class BatchResponse(BaseModel):
    model_version: str
    results: list[RecommendResponse]


class SimilarRequest(_Request):
    item_id: Id
    k: K = 20
    candidates: Candidates | None = None


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


class FieldError(BaseModel):
    field: str
    message: str


class ValidationErrorResponse(BaseModel):
    """422: ``detail`` reads "field: message; ..."; ``errors`` lists each one."""

    detail: str
    errors: list[FieldError]


class HealthResponse(BaseModel):
    status: str
    model_version: str | None = None
    reason: str | None = None
