"""The log-based metrics read fields the request log line really carries (docs/operations.md)."""

from __future__ import annotations

import json
import re

import flask
import pytest

from infra import monitoring
from services.common.errors import Unauthorized
from services.common.http import App, json_response, route
from tests.infra import harness

METRIC = "gcp:logging/metric:Metric"


def refuse(request, source_id):
    raise Unauthorized("bad signature", code="invalid_signature")


def accept(request, source_id):
    return json_response(202, {"id": "evt_1"})


APP = App(
    "ingest",
    [
        route("POST", "/webhooks/inbound/{source_id}", refuse),
        route("PUT", "/webhooks/inbound/{source_id}", accept),
    ],
)


def request_line(capsys, method: str, path: str) -> dict:
    with flask.Flask(__name__).test_request_context(path, method=method):
        APP(flask.request)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"httpRequest"' in x]
    (line,) = lines
    return line


def extract(line: dict, extractor: str):
    """What Cloud Logging's EXTRACT(field) reads from the entry this JSON line becomes:
    ``httpRequest`` is lifted into the entry's own field, the rest lands in ``jsonPayload``."""
    (path,) = re.fullmatch(r"EXTRACT\(([\w.]+)\)", extractor).groups()
    head, *rest = path.split(".")
    value = {"jsonPayload": line, "httpRequest": line["httpRequest"]}[head]
    for part in rest:
        value = value[part]
    return value


@pytest.fixture(scope="module")
def metrics() -> dict[str, dict]:
    deployment = harness.deploy()
    # By their stem: each stack's metric names end with its suffix.
    return {
        r.inputs["name"].removesuffix(f"_{harness.STACK}"): r.inputs
        for r in deployment.of_type(METRIC)
    }


def test_requests_are_counted_by_service_route_template_and_status(metrics, capsys):
    line = request_line(capsys, "PUT", "/webhooks/inbound/src_123")
    extractors = metrics[monitoring.REQUESTS_METRIC]["labelExtractors"]
    labels = {key: extract(line, ex) for key, ex in extractors.items()}
    # The template, so sources do not each become a metric series.
    assert labels == {"service": "ingest", "route": "/webhooks/inbound/{source_id}", "status": 202}
    declared = {
        label["key"] for label in metrics[monitoring.REQUESTS_METRIC]["metricDescriptor"]["labels"]
    }
    assert declared == set(extractors)


def test_refusals_are_counted_by_reason(metrics, capsys):
    line = request_line(capsys, "POST", "/webhooks/inbound/src_123")
    extractors = metrics[monitoring.REFUSALS_METRIC]["labelExtractors"]
    labels = {key: extract(line, ex) for key, ex in extractors.items()}
    assert labels == {"service": "ingest", "reason": "invalid_signature"}
    assert "httpRequest.status>=400" in metrics[monitoring.REFUSALS_METRIC]["filter"]


def test_unmatched_paths_share_one_route_label(capsys):
    line = request_line(capsys, "GET", "/no/such/path/abc")
    assert line["route"] == "unmatched"
    assert line["errorCode"] == "not_found"


def test_an_alert_watches_the_share_of_5xx_per_service():
    deployment = harness.deploy()
    (policy,) = deployment.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    (condition,) = policy.inputs["conditions"]
    threshold = condition["conditionThreshold"]
    assert monitoring.REQUESTS_METRIC in threshold["filter"]
    assert 'metric.labels.status=starts_with("5")' in threshold["filter"]
    assert "starts_with" not in threshold["denominatorFilter"]
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["thresholdValue"] == monitoring.ERROR_RATE_THRESHOLD
    assert threshold["aggregations"][0]["groupByFields"] == ["metric.label.service"]
    assert policy.inputs["notificationChannels"] == []


def test_an_alert_email_becomes_a_notification_channel():
    deployment = harness.deploy({**harness.BASE_CONFIG, "inlet:alertEmail": "ops@example.com"})
    (channel,) = deployment.of_type("gcp:monitoring/notificationChannel:NotificationChannel")
    assert channel.inputs["type"] == "email"
    assert channel.inputs["labels"] == {"email_address": "ops@example.com"}
    (policy,) = deployment.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    assert len(policy.inputs["notificationChannels"]) == 1
