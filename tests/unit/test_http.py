"""The HTTP edge every service shares: routing, errors, CORS, request ids, bodies and the log line.

Requests are built with Flask's test request context and handed to ``App`` the way
functions-framework does; the handlers here never touch Firestore.
"""

from __future__ import annotations

import io
import json
import re

import flask
import pytest
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_errors

from services.common import context, http
from services.common.errors import Conflict
from services.common.http import App, json_body, json_response, read_body, route

ORIGIN = "https://dashboard.example.com"
LIMIT = 16
BODY_MARKER = "body-marker-7f3a"
BEARER_MARKER = "bearer-marker-91c2"

flask_app = flask.Flask(__name__)


def show_thing(request, thing_id):
    return json_response(200, {"id": thing_id})


def create_thing(request):
    return json_response(201, json_body(request))


def list_things(request):
    return json_response(200, {"items": []})


def conflict(request):
    raise Conflict("already there", code="duplicate_thing", headers={"X-Conflict": "thing_1"})


def crash(request):
    raise RuntimeError(f"database password is hunter2 near {BODY_MARKER}")


def storage_down(request):
    raise gexc.ServiceUnavailable("firestore is away")


def echo_size(request):
    return json_response(200, {"size": len(read_body(request, LIMIT))})


def count_firestore_ops(request):
    context.current().firestore_ops += 3
    return json_response(204)


APP = App(
    "test",
    [
        route("GET", "/v1/things/{thing_id}", show_thing, browser=True),
        route("POST", "/v1/things", create_thing, browser=True),
        route("GET", "/v1/things", list_things),
        route("POST", "/conflict", conflict, browser=True),
        route("GET", "/crash", crash),
        route("GET", "/storage", storage_down),
        route("POST", "/size", echo_size),
        route("POST", "/ops", count_firestore_ops),
    ],
    project="demo",
    cors_origins=[ORIGIN, "http://localhost:3000"],
)


def call(path: str, method: str = "GET", app: App = APP, **kwargs) -> flask.Response:
    with flask_app.test_request_context(path, method=method, **kwargs):
        return app(flask.request)


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def request_line(capsys) -> dict:
    """The one access-log line of the request just made."""
    lines = [line for line in log_lines(capsys) if "httpRequest" in line]
    assert len(lines) == 1
    return lines[0]


class CountingStream(io.BytesIO):
    """A request body that remembers how much of it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        n = super().readinto(buffer)
        self.consumed += n
        return n


def chunked(stream: io.BytesIO) -> dict:
    """Request arguments for a body without Content-Length, as a WSGI server passes it on."""
    return {
        "input_stream": stream,
        "headers": {"Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True},
    }


# --- Routing -------------------------------------------------------------------------------------


def test_health_answers_ok_with_the_service_name():
    response = call("/health")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"status": "ok", "service": "test"}


def test_path_parameters_are_passed_to_the_handler():
    response = call("/v1/things/thing_42")

    assert response.get_json() == {"id": "thing_42"}


def test_a_trailing_slash_matches_the_same_route():
    assert call("/v1/things/thing_42/").get_json() == {"id": "thing_42"}


def test_a_path_parameter_is_one_segment_only():
    assert call("/v1/things/a/b").status_code == 404


def test_an_unknown_path_is_a_json_404():
    response = call("/nowhere")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/healthz", "/health/extra", "/HEALTH", "/"])
def test_near_misses_of_a_route_are_404(path):
    assert call(path).status_code == 404


def test_a_wrong_method_on_a_known_path_is_a_json_405():
    response = call("/v1/things/thing_42", method="DELETE")

    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_the_method_decides_between_routes_on_one_path():
    assert call("/v1/things").get_json() == {"items": []}
    assert call("/v1/things", method="POST", json={"label": "x"}).status_code == 201


# --- Errors --------------------------------------------------------------------------------------


def test_an_inlet_error_is_rendered_with_its_status_code_message_and_headers():
    response = call("/conflict", method="POST")

    assert response.status_code == 409
    assert response.headers["X-Conflict"] == "thing_1"
    assert response.get_json() == {"error": {"code": "duplicate_thing", "message": "already there"}}


def test_an_errors_details_sit_beside_its_code_and_message():
    from services.common.errors import Unprocessable
    from services.common.http import error_response

    err = Unprocessable("no", code="schema_violation", details={"pointer": "/a", "keyword": "type"})
    with flask.Flask(__name__).app_context():
        body = error_response(err).get_json()
    assert body == {
        "error": {"code": "schema_violation", "message": "no", "pointer": "/a", "keyword": "type"}
    }


def test_an_unexpected_exception_is_a_json_500_without_details(capsys):
    response = call("/crash")

    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "Traceback" not in body
    assert "hunter2" not in body
    assert "RuntimeError" not in body
    out = capsys.readouterr().out
    assert "hunter2" not in out  # the exception's message can quote input: never logged


def test_an_unexpected_exception_is_an_error_request_line_naming_its_type(capsys):
    call("/crash", headers={"X-Request-Id": "req-500"})

    line = request_line(capsys)
    assert line["severity"] == "ERROR"
    assert line["httpRequest"]["status"] == 500
    assert line["errorType"] == "RuntimeError"
    assert line["requestId"] == "req-500"


def test_a_500_reports_its_stack_trace_in_the_shape_error_reporting_reads(capsys):
    call("/crash", headers={"X-Request-Id": "req-trace", "X-Cloud-Trace-Context": "abc123/1"})

    (report,) = [line for line in log_lines(capsys) if "httpRequest" not in line]
    assert report["severity"] == "ERROR"
    assert report["@type"] == (
        "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
    )
    assert report["serviceContext"] == {"service": "test"}
    assert report["context"]["httpRequest"] == {"method": "GET", "url": "/crash"}
    assert report["requestId"] == "req-trace"
    assert report["logging.googleapis.com/trace"] == "projects/demo/traces/abc123"
    trace = report["stack_trace"]
    assert report["message"] == trace
    # Python's own traceback format, down to the frame that raised, as Error Reporting parses it.
    assert trace.startswith("Traceback (most recent call last):\n  File ")
    assert re.search(r'File ".*test_http.py", line \d+, in crash\nRuntimeError$', trace)
    assert trace.endswith("\nRuntimeError")
    assert "hunter2" not in json.dumps(report) and BODY_MARKER not in json.dumps(report)


@pytest.mark.parametrize(
    "error",
    [
        auth_errors.TransportError("metadata server did not answer"),
        auth_errors.RefreshError("token endpoint refused"),
        auth_errors.DefaultCredentialsError("no credentials found"),
    ],
)
def test_google_credentials_that_cannot_be_obtained_are_503_with_retry_after(capsys, error):
    def obtain_credentials(request):
        raise error

    app = App("bare", [route("GET", "/creds", obtain_credentials)])
    response = call("/creds", app=app)

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "storage_unavailable"
    (line,) = log_lines(capsys)  # an outage, not a bug: no stack trace to report
    assert line["httpRequest"]["status"] == 503


def test_storage_unavailable_is_a_503_with_retry_after():
    response = call("/storage")

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "storage_unavailable"


def test_an_empty_json_response_has_an_empty_body():
    response = call("/ops", method="POST")

    assert response.status_code == 204
    assert response.get_data() == b""


# --- CORS ----------------------------------------------------------------------------------------


def test_preflight_from_a_configured_origin_is_answered_with_cors_headers():
    response = call(
        "/v1/things/thing_42",
        method="OPTIONS",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Origin" in response.headers["Vary"]


@pytest.mark.parametrize(
    "origin", ["https://evil.example.com", "https://dashboard.example.com.evil.com", "null", "*"]
)
def test_preflight_from_another_origin_carries_no_cors_headers(origin):
    response = call("/v1/things/thing_42", method="OPTIONS", headers={"Origin": origin})

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers


def test_preflight_on_a_route_that_is_not_browser_facing_is_405():
    response = call("/crash", method="OPTIONS", headers={"Origin": ORIGIN})

    assert response.status_code == 405
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_browser_request_from_a_configured_origin_may_read_the_answer():
    response = call("/v1/things/thing_42", headers={"Origin": "http://localhost:3000"})

    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Access-Control-Allow-Methods" not in response.headers


def test_a_browser_request_may_read_an_error_answer_too():
    response = call("/conflict", method="POST", headers={"Origin": ORIGIN})

    assert response.status_code == 409
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_a_non_browser_route_never_carries_cors_headers():
    response = call("/health", headers={"Origin": ORIGIN})

    assert "Access-Control-Allow-Origin" not in response.headers


def test_without_configured_origins_no_cors_headers_are_sent():
    app = App("bare", [route("GET", "/x", list_things, browser=True)])

    response = call("/x", app=app, method="OPTIONS", headers={"Origin": ORIGIN})

    assert "Access-Control-Allow-Origin" not in response.headers


# --- Request ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["abc", "req-1.2_3", "A" * 64, "0f8fad5b-d9cb-469f-a165"])
def test_a_well_formed_request_id_is_echoed(given):
    assert call("/health", headers={"X-Request-Id": given}).headers["X-Request-Id"] == given


@pytest.mark.parametrize(
    "given", ["", "has space", "A" * 65, "semi;colon", "caf\u00e9", "<script>", "a/b"]
)
def test_a_malformed_request_id_is_replaced(given):
    echoed = call("/health", headers={"X-Request-Id": given}).headers["X-Request-Id"]

    assert echoed != given
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)


def test_generated_request_ids_differ():
    ids = {call("/health").headers["X-Request-Id"] for _ in range(200)}
    assert len(ids) == 200 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_request_id_with_a_trailing_newline_is_replaced_not_echoed():
    # werkzeug's test client refuses such a header, so it goes in through the WSGI environ.
    response = call("/health", environ_overrides={"HTTP_X_REQUEST_ID": "abc\n"})

    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])


def test_a_missing_request_id_gets_a_fresh_one_per_request():
    first = call("/health").headers["X-Request-Id"]
    second = call("/health").headers["X-Request-Id"]

    assert first != second


def test_the_request_id_is_also_on_error_answers():
    assert call("/nowhere", headers={"X-Request-Id": "r-404"}).headers["X-Request-Id"] == "r-404"
    assert call("/crash", headers={"X-Request-Id": "r-500"}).headers["X-Request-Id"] == "r-500"


# --- Bodies --------------------------------------------------------------------------------------


def test_a_body_up_to_the_limit_is_read_whole():
    assert call("/size", method="POST", data=b"x" * LIMIT).get_json() == {"size": LIMIT}


def test_a_body_announced_over_1_mib_is_refused_without_reading_it():
    announced = http.DRAIN_LIMIT + 1
    stream = CountingStream(b"x" * announced)

    response = call("/size", method="POST", input_stream=stream, content_length=announced)

    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert stream.consumed == 0


def test_a_refused_body_of_up_to_1_mib_is_read_to_its_end_after_the_answer():
    # Refused by Content-Length before any read; then dropped, so the connection can be reused.
    stream = CountingStream(b"x" * (LIMIT + 1))

    response = call("/size", method="POST", input_stream=stream, content_length=LIMIT + 1)

    assert response.status_code == 413
    assert stream.consumed == LIMIT + 1


def test_a_chunked_body_up_to_the_limit_is_read_whole():
    response = call("/size", method="POST", **chunked(CountingStream(b"x" * LIMIT)))

    assert response.get_json() == {"size": LIMIT}


def test_a_chunked_body_over_the_limit_is_refused_after_reading_just_past_the_cap():
    stream = CountingStream(b"x" * (1024 * 1024))

    response = call("/size", method="POST", **chunked(stream))

    assert response.status_code == 413
    assert stream.consumed <= LIMIT + 1


def test_read_body_reads_no_further_than_a_smaller_content_length():
    with flask_app.test_request_context(
        "/size",
        method="POST",
        input_stream=io.BytesIO(b"x" * 100),
        environ_overrides={"CONTENT_LENGTH": "4"},
    ):
        assert read_body(flask.request, LIMIT) == b"xxxx"


def test_json_body_reads_an_empty_body_as_an_empty_object():
    for data in (b"", b"  \n"):
        with flask_app.test_request_context("/v1/things", method="POST", data=data):
            assert json_body(flask.request) == {}


@pytest.mark.parametrize("data", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_json_body_must_be_an_object(data):
    response = call("/v1/things", method="POST", data=data)

    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "body must be a JSON object"


@pytest.mark.parametrize(
    "data", [b"{", b"{'a': 1}", b'{"a": "\xff"}', b"\xff\xfe", b'{"retention": NaN}']
)
def test_json_body_that_is_not_strict_json_is_a_bad_request(data):
    response = call("/v1/things", method="POST", data=data)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_json_body_over_its_limit_is_refused():
    response = call("/v1/things", method="POST", data=b'{"a":"' + b"x" * 70_000 + b'"}')

    assert response.status_code == 413


# --- The request log line ------------------------------------------------------------------------


def test_each_request_writes_exactly_one_json_log_line(capsys):
    response = call("/v1/things/thing_42", headers={"X-Request-Id": "req-1", "User-Agent": "t/1"})

    (line,) = log_lines(capsys)
    assert line["severity"] == "INFO"
    assert line["service"] == "test"
    assert line["requestId"] == "req-1" == response.headers["X-Request-Id"]
    assert line["firestoreOps"] == 0
    assert line["httpRequest"]["status"] == 200
    assert line["httpRequest"]["requestMethod"] == "GET"
    assert line["httpRequest"]["requestUrl"] == "/v1/things/thing_42"
    assert line["httpRequest"]["userAgent"] == "t/1"
    assert re.fullmatch(r"\d+\.\d{6}s", line["httpRequest"]["latency"])


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [("/nowhere", "GET", 404), ("/health", "POST", 405), ("/conflict", "POST", 409)],
)
def test_client_errors_log_one_info_line_with_their_status(capsys, path, method, status):
    call(path, method=method)

    (line,) = log_lines(capsys)
    assert line["severity"] == "INFO"
    assert line["httpRequest"]["status"] == status


def test_a_503_logs_its_request_line_as_an_error(capsys):
    call("/storage")

    line = request_line(capsys)
    assert line["severity"] == "ERROR"
    assert line["httpRequest"]["status"] == 503


def test_the_log_line_counts_the_requests_firestore_operations(capsys):
    call("/ops", method="POST")

    assert request_line(capsys)["firestoreOps"] == 3


def test_the_log_line_carries_the_cloud_trace(capsys):
    call("/health", headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"})

    line = request_line(capsys)
    assert (
        line["logging.googleapis.com/trace"]
        == "projects/demo/traces/105445aa7843bc8bf206b12000100000"
    )


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/things", "POST"), ("/size", "POST"), ("/crash", "GET"), ("/nowhere", "POST")],
)
def test_the_log_never_holds_the_body_the_token_or_the_query_string(capsys, path, method):
    call(
        f"{path}?signature=qs-marker-55",
        method=method,
        data=json.dumps({"secret": BODY_MARKER}).encode(),
        headers={"Authorization": f"Bearer {BEARER_MARKER}", "Content-Type": "application/json"},
    )

    out = capsys.readouterr().out
    assert out.strip()
    assert BODY_MARKER not in out
    assert BEARER_MARKER not in out
    assert "qs-marker-55" not in out
    assert all(json.loads(line) for line in out.splitlines())


@pytest.mark.parametrize(
    ("path", "method", "allow"),
    [
        ("/health", "POST", "GET"),
        ("/v1/things", "DELETE", "GET, OPTIONS, POST"),
        ("/v1/things/thing_1", "TRACE", "GET, OPTIONS"),
        ("/size", "GET", "POST"),
    ],
)
def test_a_405_lists_the_methods_the_path_supports(path, method, allow):
    response = call(path, method=method)

    assert response.status_code == 405
    assert response.headers["Allow"] == allow  # RFC 9110 section 15.5.6
    assert response.get_json()["error"]["code"] == "method_not_allowed"
