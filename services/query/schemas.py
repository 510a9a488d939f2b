"""JSON Schemas of the bodies the query service accepts, the same objects ``openapi.yaml``
carries under ``components/schemas`` (a test keeps the two equal). Blocks are validated with
``jsonschema`` against them, so the documentation and the validator cannot drift apart."""

from __future__ import annotations

from typing import Any

# The path language of ``paths.parse``, exactly: a dotted path of at most 32 names, or ``$``
# followed by at most 32 ``.name``, ``[index]`` or quoted ``['key']`` selectors.
_NAME = r"""[^.\[\]*?@()'"$,:\x00-\x20\x7f]+"""
_INDEX = r"\[(?:0|[1-9][0-9]{0,8})\]"
_QUOTED = r"""\['(?:[^'\\]|\\['\\])*'\]|\["(?:[^"\\]|\\["\\])*"\]"""
_SELECTOR = rf"(?:\.{_NAME}|{_INDEX}|{_QUOTED})"
PATH = {
    "type": "string",
    "minLength": 1,
    "maxLength": 512,
    "pattern": rf"^(?:{_NAME}(?:\.{_NAME}){{0,31}}|\${_SELECTOR}{{0,32}})$",
}
OPTIONAL_PATH = {"oneOf": [PATH, {"type": "null"}]}
JSON_VALUE: dict[str, Any] = {}  # any JSON value
WINDOW = {"enum": ["15m", "1h", "24h", "7d"]}


def _query(type_: str, params: dict[str, Any], *, params_required: bool = False):
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "params"] if params_required else ["type"],
        "properties": {"type": {"const": type_}, "params": params},
    }


BUCKET = {"enum": ["1m", "5m", "1h", "1d"]}


def _folded(extra: dict[str, Any]) -> dict[str, Any]:
    """The params of an aggregate (``extra`` adds a series' bucket): ``count`` alone needs no
    field."""
    names = ["window", *extra]
    return {
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": False,
                "required": [*names, "op"],
                "properties": {
                    "window": WINDOW,
                    **extra,
                    "op": {"const": "count"},
                    "field": OPTIONAL_PATH,
                },
            },
            {
                "type": "object",
                "additionalProperties": False,
                "required": [*names, "op", "field"],
                "properties": {
                    "window": WINDOW,
                    **extra,
                    "op": {"enum": ["sum", "avg"]},
                    "field": PATH,
                },
            },
        ]
    }


# A series has at most catalog.MAX_POINTS points: a 7d window takes 1h or 1d buckets.
_SERIES = {
    **_folded({"bucket": BUCKET}),
    "not": {
        "required": ["window", "bucket"],
        "properties": {"window": {"const": "7d"}, "bucket": {"enum": ["1m", "5m"]}},
    },
}

# One shape per query type, as ``catalog.parse`` reads them.
QUERY_CONFIG = {
    "oneOf": [
        _query("webhook.latest", {"type": ["object", "null"], "maxProperties": 0}),
        _query("webhook.aggregate", _folded({}), params_required=True),
        _query(
            "webhook.list",
            {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                    "sortBy": OPTIONAL_PATH,
                    "order": {"enum": ["asc", "desc"]},
                },
            },
        ),
        _query("webhook.series", _SERIES, params_required=True),
    ]
}

PROJECTION_FIELD = {
    "oneOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["source"],
            "properties": {
                "source": PATH,
                "format": {"enum": ["number", "integer", "percent", "text", "datetime"]},
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["literal"],
            "properties": {"literal": JSON_VALUE},
        },
    ]
}

PROJECTION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["fields"],
    "properties": {
        "fields": {
            "type": "object",
            "maxProperties": 64,
            "propertyNames": {"minLength": 1, "maxLength": 128},
            "additionalProperties": {"$ref": "#/components/schemas/ProjectionField"},
        }
    },
}

BLOCK_WRITE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["binding", "widget"],
    "properties": {
        "binding": {
            "type": "object",
            "additionalProperties": False,
            "required": ["dataSourceId", "queryConfig", "projection"],
            "properties": {
                "dataSourceId": {"type": "string", "minLength": 1, "maxLength": 64},
                "queryConfig": {"$ref": "#/components/schemas/QueryConfig"},
                "projection": {"$ref": "#/components/schemas/Projection"},
            },
        },
        "widget": {
            "type": "object",
            "additionalProperties": False,
            "required": ["template"],
            "properties": {
                "template": {"type": "string", "minLength": 1, "maxLength": 128},
                "data": {"type": "object"},
            },
        },
    },
}

# The names under openapi.yaml's components/schemas.
COMPONENTS = {
    "QueryConfig": QUERY_CONFIG,
    "ProjectionField": PROJECTION_FIELD,
    "Projection": PROJECTION,
    "BlockWrite": BLOCK_WRITE,
}
