"""The query catalogue: what a query may ask, and 400s that name the allowed values."""

from __future__ import annotations

import pytest

from services.common.errors import BadRequest
from services.query import catalog


def test_each_type_parses_with_its_defaults():
    assert catalog.parse({"type": "webhook.latest"}) == catalog.Latest()
    assert catalog.parse({"type": "webhook.list", "params": {}}) == catalog.Listing(10, "desc")
    aggregate = catalog.parse(
        {"type": "webhook.aggregate", "params": {"window": "1h", "field": "$.a", "op": "sum"}}
    )
    assert aggregate == catalog.Aggregate("1h", "sum", ("a",))
    assert aggregate.window_s == 3600


def test_a_series_takes_an_aggregates_params_and_a_bucket():
    params = {"window": "24h", "bucket": "1m", "field": "amount", "op": "sum"}
    series = catalog.parse({"type": "webhook.series", "params": params})
    assert series == catalog.Series("24h", "1m", "sum", ("amount",))
    assert (series.window_s, series.bucket_s) == (86400, 60)
    for window in catalog.WINDOWS:
        for bucket in ("1h", "1d"):
            params = {"window": window, "bucket": bucket, "op": "count"}
            assert catalog.parse({"type": "webhook.series", "params": params}).bucket == bucket


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"type": "webhook.nope"}, "webhook.latest, webhook.aggregate, webhook.list"),
        ({"type": "webhook.series", "params": {"window": "1h", "op": "count"}}, "1m, 5m, 1h, 1d"),
        (
            {"type": "webhook.series", "params": {"window": "7d", "bucket": "5m", "op": "count"}},
            "7d: 1h or 1d",
        ),
        (
            {"type": "webhook.series", "params": {"window": "1h", "bucket": "1m", "op": "avg"}},
            "needs a field",
        ),
        ({"type": "webhook.aggregate", "params": {"window": "2h", "op": "count"}}, "15m, 1h"),
        ({"type": "webhook.aggregate", "params": {"window": "1h", "op": "max"}}, "sum, count"),
        ({"type": "webhook.aggregate", "params": {"window": "1h", "op": "sum"}}, "needs a field"),
        ({"type": "webhook.list", "params": {"limit": 0}}, "1 to 100"),
        ({"type": "webhook.list", "params": {"limit": 101}}, "1 to 100"),
        ({"type": "webhook.list", "params": {"limit": True}}, "1 to 100"),
        ({"type": "webhook.list", "params": {"limit": "5"}}, "1 to 100"),
        ({"type": "webhook.list", "params": {"order": "up"}}, "desc, asc"),
        ({"type": "webhook.list", "params": {"sortBy": "$..x"}}, "dotted path"),
        ({"type": "webhook.list", "params": {"sortBy": "$[*]"}}, "dotted path"),
        ({"type": "webhook.list", "params": {"extra": 1}}, "limit, sortBy, order"),
        ({"type": "webhook.latest", "params": {"x": 1}}, "allowed: none"),
        ({"type": "webhook.latest", "extra": 1}, "type and params"),
        ({"type": "webhook.latest", "params": [1]}, "params must be an object"),
        ([1, 2], "must be an object"),
        ({"type": ["webhook.latest"]}, "webhook.latest"),
    ],
)
def test_bad_queries_are_a_400_naming_what_is_allowed(config, named):
    with pytest.raises(BadRequest) as refused:
        catalog.parse(config)
    assert named in refused.value.message
