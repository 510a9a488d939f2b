"""The query catalogue: ``{type, params}`` validated into a query value (docs/query.md). Pure.

Every refusal is a 400 whose message names the allowed values, so a dashboard author can fix a
binding from the error alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.errors import BadRequest
from services.query import paths

WINDOWS = {"15m": 15 * 60, "1h": 3600, "24h": 24 * 3600, "7d": 7 * 24 * 3600}
OPS = ("sum", "count", "avg")
ORDERS = ("desc", "asc")
TYPES = ("webhook.latest", "webhook.aggregate", "webhook.list", "webhook.series")
BUCKETS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
# Points of one series at most: 24h of minutes (a 7d window takes 1h or 1d buckets). Bounds
# what one chart reads (module rollup_store, ``read_series``).
MAX_POINTS = 1441
MAX_LIST = 100
DEFAULT_LIST = 10


@dataclass(frozen=True)
class Latest:
    type = "webhook.latest"


@dataclass(frozen=True)
class Aggregate:
    window: str
    op: str
    field: paths.Path | None = None
    type = "webhook.aggregate"

    @property
    def window_s(self) -> int:
        return WINDOWS[self.window]


@dataclass(frozen=True)
class Listing:
    limit: int = DEFAULT_LIST
    order: str = "desc"
    sort_by: paths.Path | None = None
    type = "webhook.list"


@dataclass(frozen=True)
class Series:
    """Aggregates of consecutive buckets of a window: each point folds one bucket."""

    window: str
    bucket: str
    op: str
    field: paths.Path | None = None
    type = "webhook.series"

    @property
    def window_s(self) -> int:
        return WINDOWS[self.window]

    @property
    def bucket_s(self) -> int:
        return BUCKETS[self.bucket]


Query = Latest | Aggregate | Listing | Series


def _one_of(name: str, value: Any, allowed: tuple[str, ...] | dict) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}", code="bad_query")
    return value


def _only(params: dict[str, Any], allowed: tuple[str, ...], type_: str) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        names = ", ".join(allowed) or "none"
        raise BadRequest(
            f"unknown params for {type_}: {', '.join(k[:40] for k in unknown[:5])}; "
            f"allowed: {names}",
            code="bad_query",
        )


def _folded(params: dict[str, Any]) -> tuple[str, str, paths.Path | None]:
    """The window, op and field of an aggregate or a series."""
    window = _one_of("window", params.get("window"), WINDOWS)
    op = _one_of("op", params.get("op"), OPS)
    field = None
    if params.get("field") is not None:
        field = paths.parse(params["field"], "field")
    if field is None and op != "count":
        raise BadRequest(f"op {op} needs a field (a path into the body)", code="bad_query")
    return window, op, field


def parse(config: Any) -> Query:
    """A ``{type, params}`` object as a query, or a 400 naming what is allowed."""
    if not isinstance(config, dict):
        raise BadRequest("the query must be an object {type, params}", code="bad_query")
    extra = sorted(set(config) - {"type", "params"})
    if extra:
        raise BadRequest("a query has only the keys type and params", code="bad_query")
    type_ = _one_of("type", config.get("type"), TYPES)
    params = config.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise BadRequest("params must be an object", code="bad_query")
    if type_ == "webhook.latest":
        _only(params, (), type_)
        return Latest()
    if type_ == "webhook.aggregate":
        _only(params, ("window", "field", "op"), type_)
        window, op, field = _folded(params)
        return Aggregate(window=window, op=op, field=field)
    if type_ == "webhook.series":
        _only(params, ("window", "bucket", "field", "op"), type_)
        window, op, field = _folded(params)
        bucket = _one_of("bucket", params.get("bucket"), BUCKETS)
        if -(-WINDOWS[window] // BUCKETS[bucket]) + 1 > MAX_POINTS:
            raise BadRequest(
                f"bucket {bucket} gives a {window} window more than {MAX_POINTS} points; "
                "use a larger bucket (7d: 1h or 1d)",
                code="bad_query",
            )
        return Series(window=window, bucket=bucket, op=op, field=field)
    _only(params, ("limit", "sortBy", "order"), type_)
    limit = params.get("limit", DEFAULT_LIST)
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)  # 5.0 is the integer 5 to JSON Schema, and so to this API
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIST}", code="bad_query")
    order = _one_of("order", params.get("order", "desc"), ORDERS)
    sort_by = None
    if params.get("sortBy") is not None:
        sort_by = paths.parse(params["sortBy"], "sortBy")
    return Listing(limit=limit, order=order, sort_by=sort_by)
