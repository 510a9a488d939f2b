"""JSON Schemas of the bodies the query service accepts, the same objects ``openapi.yaml``
carries under ``components/schemas`` (a test keeps the two equal). Blocks are validated with
``jsonschema`` against them, so the documentation and the validator cannot drift apart."""

from __future__ import annotations

from typing import Any

PATH = {"type": "string", "minLength": 1, "maxLength": 512}
JSON_VALUE: dict[str, Any] = {}  # any JSON value

QUERY_CONFIG = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"enum": ["webhook.latest", "webhook.aggregate", "webhook.list"]},
        "params": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "window": {"enum": ["15m", "1h", "24h", "7d"]},
                "field": PATH,
                "op": {"enum": ["sum", "count", "avg"]},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "sortBy": PATH,
                "order": {"enum": ["asc", "desc"]},
            },
        },
    },
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
