"""How a schema contract refuses (docs/ingest.md "Schema contracts"): apart from the validator,
so the receive path can name these without importing jsonschema and RE2 until a source with a
schema needs them (a cold start pays for what it uses)."""

from __future__ import annotations

from services.common.errors import BadRequest, Unprocessable


class InvalidSchema(BadRequest):
    """A schema refused when set; the message names the problem and where it is."""

    code = "invalid_schema"


class SchemaViolation(Unprocessable):
    code = "schema_violation"


class SchemaTooComplex(Unprocessable):
    code = "schema_too_complex"
