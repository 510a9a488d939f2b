"""The operators' view: log-based metrics from each request's log line, and a 5xx alert.

Every service writes one JSON line per request (``services/common/http.py``): ``service``,
``route`` (the route's template, never a path with ids in it), ``errorCode`` on a refusal, and
``httpRequest``, which Cloud Logging lifts into the entry's own ``httpRequest`` field.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra import waits
from infra.config import SERVICES, StackConfig

# Metric names are project-unique: each stack's carry its suffix (requests_metric(cfg)).
REQUESTS_METRIC = "inlet_requests"
REFUSALS_METRIC = "inlet_refusals"
# Only the three services' request lines: other lines (warnings, stack traces) have no route.
REQUEST_LINES = (
    'resource.type="cloud_run_revision" '
    'AND jsonPayload.service=("clerk-sync" OR "ingest" OR "query") '
    "AND jsonPayload.route:* AND httpRequest.status>0"
)
REFUSAL_LINES = f"{REQUEST_LINES} AND httpRequest.status>=400 AND httpRequest.status<500"
ERROR_RATE_THRESHOLD = 0.05  # of a service's requests over five minutes


def _label(key: str, description: str) -> dict[str, str]:
    return {"key": key, "value_type": "STRING", "description": description}


def this_stack(cfg: StackConfig, lines: str) -> str:
    """``lines`` from this stack's services only: another stack in the project logs the same."""
    names = " OR ".join(f'"{cfg.service_name(s)}"' for s in SERVICES)
    return f"{lines} AND resource.labels.service_name=({names})"


def requests_metric(cfg: StackConfig) -> str:
    return f"{REQUESTS_METRIC}_{cfg.suffix}"


def refusals_metric(cfg: StackConfig) -> str:
    return f"{REFUSALS_METRIC}_{cfg.suffix}"


def provision(cfg: StackConfig, opts: pulumi.ResourceOptions) -> gcp.monitoring.AlertPolicy:
    requests = gcp.logging.Metric(
        "requests-metric",
        project=cfg.project,
        name=requests_metric(cfg),
        description="Inlet requests by service, route and status",
        filter=this_stack(cfg, REQUEST_LINES),
        metric_descriptor={
            "metric_kind": "DELTA",
            "value_type": "INT64",
            "unit": "1",
            "display_name": "Inlet requests",
            "labels": [
                _label("service", "clerk-sync, ingest or query"),
                _label("route", "the route's template, e.g. /webhooks/inbound/{source_id}"),
                _label("status", "the HTTP status"),
            ],
        },
        label_extractors={
            "service": "EXTRACT(jsonPayload.service)",
            "route": "EXTRACT(jsonPayload.route)",
            "status": "EXTRACT(httpRequest.status)",
        },
        opts=opts,
    )
    gcp.logging.Metric(
        "refusals-metric",
        project=cfg.project,
        name=refusals_metric(cfg),
        description="Inlet refusals (4xx) by service and reason",
        filter=this_stack(cfg, REFUSAL_LINES),
        metric_descriptor={
            "metric_kind": "DELTA",
            "value_type": "INT64",
            "unit": "1",
            "display_name": "Inlet refusals",
            "labels": [
                _label("service", "clerk-sync, ingest or query"),
                _label("reason", "the error code answered, e.g. invalid_signature"),
            ],
        },
        label_extractors={
            "service": "EXTRACT(jsonPayload.service)",
            "reason": "EXTRACT(jsonPayload.errorCode)",
        },
        opts=opts,
    )

    visible = waits.after("requests-metric-visible", waits.METRIC_PROPAGATION, [requests], opts)

    channels = []
    if cfg.alert_email:
        channels.append(
            gcp.monitoring.NotificationChannel(
                "alert-email",
                project=cfg.project,
                display_name=f"Inlet alerts ({cfg.stack})",
                type="email",
                labels={"email_address": cfg.alert_email},
                opts=opts,
            ).id
        )
    metric_type = f'metric.type="logging.googleapis.com/user/{requests_metric(cfg)}"'
    per_service = {
        "alignment_period": "300s",
        "per_series_aligner": "ALIGN_DELTA",
        "cross_series_reducer": "REDUCE_SUM",
        "group_by_fields": ["metric.label.service"],
    }
    return gcp.monitoring.AlertPolicy(
        "server-errors-alert",
        project=cfg.project,
        display_name=f"Inlet ({cfg.stack}): 5xx rate above 5%",
        combiner="OR",
        severity="ERROR",
        conditions=[
            {
                "display_name": "share of requests answered 5xx, per service, over 5 minutes",
                "condition_threshold": {
                    "filter": (
                        f'{metric_type} AND resource.type="cloud_run_revision" '
                        'AND metric.labels.status=starts_with("5")'
                    ),
                    "aggregations": [per_service],
                    "denominator_filter": f'{metric_type} AND resource.type="cloud_run_revision"',
                    "denominator_aggregations": [per_service],
                    "comparison": "COMPARISON_GT",
                    "threshold_value": ERROR_RATE_THRESHOLD,
                    "duration": "300s",
                    "trigger": {"count": 1},
                },
            }
        ],
        documentation={
            "mime_type": "text/markdown",
            "content": (
                "More than 5% of an Inlet service's requests answered 5xx over five minutes. "
                "A 500 logs its stack trace at severity ERROR (Error Reporting groups them); "
                "a 503 means Firestore was unavailable. Filter the logs by "
                "`jsonPayload.service` and `httpRequest.status>=500`."
            ),
        },
        notification_channels=channels,
        # Monitoring refuses an alert on a metric it does not see yet, and a new one takes
        # minutes to appear: the alert waits for that, not only for the metric's create.
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[visible])),
    )
