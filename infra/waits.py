"""Waits where Google needs time after a create, so a first ``pulumi up`` needs no second run.

``depends_on`` orders creates but does not wait for Google to see the result: a new log-based
metric reaches Cloud Monitoring minutes later (terraform-provider-google issue 11102), and a
new IAM grant is not honoured everywhere at once (Cloud Functions checks secret access at
deploy time, Cloud Build checks the build account's access at build time). A ``Sleep`` waits
once when created, and again only when what it waits for changes (its ``triggers``).
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumiverse_time as time

# Google: a new log-based metric "could take up to 10 minutes" to be usable in an alert.
METRIC_PROPAGATION = "10m"
# Google: a grant usually applies within two minutes, rarely up to seven.
GRANT_PROPAGATION = "2m"


def after(
    name: str,
    duration: str,
    resources: list[pulumi.CustomResource],
    opts: pulumi.ResourceOptions | None = None,
) -> time.Sleep:
    """A wait of ``duration`` once ``resources`` exist, repeated when any of them is replaced."""
    ids = pulumi.Output.all(*[r.id for r in resources]).apply(
        lambda values: hashlib.sha256("\n".join(sorted(map(str, values))).encode()).hexdigest()
    )
    return time.Sleep(
        name,
        create_duration=duration,
        triggers={"ids": ids},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=resources)),
    )
