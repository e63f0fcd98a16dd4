"""Property-based checks of the API against its own OpenAPI schema (schemathesis, in process).

Schemathesis draws requests from /openapi.json, valid and deliberately invalid ones, for
every operation; no answer may be a server error, and every answer must be one the
schema documents (status code, content type, headers, body schema).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from depthlens.serve import ServeSettings, create_app

# Small limits keep the drawn uploads cheap to refuse; the lifespan runs on first call.
app = create_app(ServeSettings(device="cpu", max_upload_mb=1, max_megapixels=1))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_only_documented_answers(case):
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ]
    )
