"""A first ``pulumi up`` succeeds with no second run (docs/deploy.md): it waits where Google
needs time, serves only once Firestore is ready, and shares a project with another stack."""

from __future__ import annotations

import re

import pytest

from infra import waits
from infra.config import (
    DEFAULT_RECONCILE_SCHEDULE,
    SUFFIX_MAX,
    InfraConfigError,
    stack_suffix,
)
from tests.infra import harness
from tests.infra.harness import Declared, Deployment

FUNCTION = "gcp:cloudfunctionsv2/function:Function"
JOB = "gcp:cloudscheduler/job:Job"
SLEEP = "time:index/sleep:Sleep"
DATABASE = "gcp:firestore/database:Database"
# Inputs that hold a name Google keeps unique within a project (or, for a bucket, globally).
NAME_KEYS = ("name", "accountId", "secretId", "repositoryId")
# A bucket object's name is unique only within its bucket, which carries the stack suffix.
NOT_PROJECT_UNIQUE = {"gcp:storage/bucketObject:BucketObject"}
LONG_STACK = "Production_EU-West_Customer-Accounts"


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return harness.deploy()


def key(declared: Declared) -> str:
    return f"{declared.typ}::{declared.name}"


def project_unique_names(deployment: Deployment) -> dict[str, set[str]]:
    """Each name Google keeps project-unique, mapped to the resources that hold it."""
    names: dict[str, set[str]] = {}
    for declared in deployment.resources:
        if declared.typ in NOT_PROJECT_UNIQUE:
            continue
        for name_key in NAME_KEYS:
            value = declared.inputs.get(name_key)
            if isinstance(value, str) and not value.startswith("projects/"):
                names.setdefault(value, set()).add(declared.typ)
    return names


def firestore_ready(deployment: Deployment) -> set[str]:
    kinds = ("gcp:firestore/field:Field", "gcp:firestore/index:Index", DATABASE)
    return {key(r) for r in deployment.resources if r.typ in kinds}


# --- Waits ---------------------------------------------------------------------------------------


def test_the_alert_waits_for_a_sleep_that_waits_for_its_metric(deployment):
    metric = deployment.one("gcp:logging/metric:Metric", "requests-metric")
    sleep = deployment.one(SLEEP, "requests-metric-visible")
    assert key(metric) in sleep.depends_on
    assert sleep.inputs["createDuration"] == waits.METRIC_PROPAGATION == "10m"
    (alert,) = deployment.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    assert key(sleep) in alert.depends_on


def test_builds_and_deploys_wait_for_a_sleep_after_every_grant(deployment):
    sleep = deployment.one(SLEEP, "grants-propagated")
    invokers = deployment.of_type("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")
    grants = {key(r) for r in deployment.resources if "role" in r.inputs and r not in invokers}
    assert len(grants) >= 10
    assert grants <= sleep.depends_on
    assert sleep.inputs["createDuration"] == waits.GRANT_PROPAGATION
    # A new or replaced grant changes the trigger, so the wait runs again before the deploy.
    assert re.fullmatch(r"[0-9a-f]{64}", sleep.inputs["triggers"]["ids"])
    for function in deployment.of_type(FUNCTION):
        assert key(sleep) in function.depends_on, function.name


def test_functions_and_jobs_wait_for_the_database_its_field_policies_and_indexes(deployment):
    ready = firestore_ready(deployment)
    assert len(ready) > 3
    waiting = deployment.of_type(FUNCTION) + deployment.of_type(JOB)
    assert {r.name for r in waiting} >= {"clerkSync", "ingest", "query", "sweep", "reconcile"}
    for declared in waiting:
        assert ready <= declared.depends_on, declared.name


def test_the_reconciliation_job_calls_clerk_sync_daily_with_the_sweeps_identity(deployment):
    reconcile = deployment.one(JOB, "reconcile").inputs
    sweep = deployment.one(JOB, "sweep").inputs
    assert reconcile["schedule"] == DEFAULT_RECONCILE_SCHEDULE == "17 3 * * *"
    assert reconcile["timeZone"] == "Etc/UTC"
    assert reconcile["name"] == "inlet-reconcile-test"
    target = reconcile["httpTarget"]
    clerk_sync = deployment.exports["clerkWebhookUrl"].removesuffix("/webhooks/clerk")
    assert target["uri"] == clerk_sync + "/tasks/reconcile"
    assert target["httpMethod"] == "POST"
    # The same OIDC rules as the sweep: the tasks identity, the fixed audience, no OAuth token.
    assert target["oidcToken"] == sweep["httpTarget"]["oidcToken"]
    assert target["oidcToken"]["serviceAccountEmail"].startswith("inlet-tasks-test@")
    assert "oauthToken" not in target
    # The attempt outlasts the run's budget, and clerk-sync's timeout outlasts the attempt.
    assert reconcile["attemptDeadline"] == "1800s"
    clerk_sync_config = deployment.one(FUNCTION, "clerkSync").inputs["serviceConfig"]
    budget = int(clerk_sync_config["environmentVariables"]["RECONCILE_BUDGET_S"])
    assert budget + 300 <= 1800 <= clerk_sync_config["timeoutSeconds"]
    assert reconcile["retryConfig"] == {"retryCount": 1, "minBackoffDuration": "300s"}
    assert firestore_ready(deployment) <= deployment.one(JOB, "reconcile").depends_on


def test_the_reconcile_schedule_comes_from_config_and_switches_off():
    config = {**harness.BASE_CONFIG, "inlet:reconcileSchedule": "0 */6 * * *"}
    assert harness.deploy(config).one(JOB, "reconcile").inputs["schedule"] == "0 */6 * * *"
    off = harness.deploy({**harness.BASE_CONFIG, "inlet:reconcileSchedule": "off"})
    assert {r.name for r in off.of_type(JOB)} == {"sweep"}
    # The route still exists; clerk-sync keeps its key for a run called by hand.
    refs = off.one(FUNCTION, "clerkSync").inputs["serviceConfig"]["secretEnvironmentVariables"]
    assert "CLERK_SECRET_KEY" in {ref["key"] for ref in refs}


def test_without_a_clerk_secret_key_there_is_no_reconcile_job():
    config = {k: v for k, v in harness.BASE_CONFIG.items() if k != "inlet:clerkSecretKey"}
    assert {r.name for r in harness.deploy(config).of_type(JOB)} == {"sweep"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"inlet:reconcileSchedule": "daily"}, "inlet:reconcileSchedule must be a cron"),
        (
            {"inlet:reconcileSchedule": "17 3 * * *", "inlet:clerkSecretKey": ""},
            "inlet:reconcileSchedule needs inlet:clerkSecretKey",
        ),
    ],
)
def test_a_reconcile_schedule_that_cannot_run_is_refused(config, message):
    with pytest.raises(InfraConfigError) as raised:
        harness.deploy({**harness.BASE_CONFIG, **config})
    assert message in str(raised.value)
    assert harness.CLERK_SECRET_KEY not in str(raised.value)


def test_a_short_clerk_sync_timeout_gives_a_run_that_ends_in_time():
    config = {**harness.BASE_CONFIG, "inlet:clerkSync": '{"timeoutSeconds": 300}'}
    function = harness.deploy(config).one(FUNCTION, "clerkSync").inputs["serviceConfig"]
    assert function["environmentVariables"]["RECONCILE_BUDGET_S"] == "150"


# --- Two stacks in one project -------------------------------------------------------------------


def test_two_stacks_in_one_project_share_no_name():
    prod = project_unique_names(harness.deploy(stack="prod"))
    staging = project_unique_names(harness.deploy(stack="staging"))
    kinds = set().union(*prod.values())
    for expected in (
        "gcp:serviceaccount/account:Account",
        "gcp:secretmanager/secret:Secret",
        "gcp:storage/bucket:Bucket",
        "gcp:artifactregistry/repository:Repository",
        FUNCTION,
        "gcp:cloudtasks/queue:Queue",
        JOB,
        "gcp:logging/metric:Metric",
        DATABASE,
    ):
        assert expected in kinds
    shared = set(prod) & set(staging)
    assert not shared, {name: prod[name] for name in shared}


def test_a_long_stack_name_keeps_every_name_within_its_limit():
    deployment = harness.deploy(stack=LONG_STACK)
    suffix = stack_suffix(LONG_STACK)
    assert len(suffix) <= SUFFIX_MAX
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", suffix)
    for account in deployment.of_type("gcp:serviceaccount/account:Account"):
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account.inputs["accountId"])
    (bucket,) = deployment.of_type("gcp:storage/bucket:Bucket")
    assert len(bucket.inputs["name"]) <= 63
    for function in deployment.of_type(FUNCTION):
        assert len(function.inputs["name"]) <= 49  # Cloud Run's limit for a service name
    database = deployment.one(DATABASE, "firestore").inputs["name"]
    assert re.fullmatch(r"[a-z][a-z0-9-]{2,61}[a-z0-9]", database)


@pytest.mark.parametrize(
    ("stack", "suffix"),
    [("prod", "prod"), ("staging", "staging"), ("dev2", "dev2")],
)
def test_a_short_safe_stack_name_is_its_own_suffix(stack, suffix):
    assert stack_suffix(stack) == suffix


def test_stack_names_that_clean_alike_get_different_suffixes():
    assert stack_suffix("Prod") != stack_suffix("prod")
    assert stack_suffix("eu_prod") != stack_suffix("eu-prod")


# --- The database: created, adopted or looked up -------------------------------------------------


def test_a_new_stack_creates_a_named_database_of_its_own(deployment):
    database = deployment.one(DATABASE, "firestore")
    assert database.mode == "create"
    assert database.inputs["name"] == "inlet-test"
    assert deployment.exports["firestoreDatabase"] == "inlet-test"


def test_an_existing_database_is_looked_up_never_created():
    config = {
        **harness.BASE_CONFIG,
        "inlet:firestoreDatabase": "(default)",
        "inlet:firestoreExisting": "true",
    }
    deployment = harness.deploy(config)
    (database,) = deployment.of_type(DATABASE)
    assert database.mode == "read"
    assert not [r for r in deployment.of_type(DATABASE) if r.mode == "create"]
    # The services, fields and indexes use it all the same.
    for function in deployment.of_type(FUNCTION):
        env = function.inputs["serviceConfig"]["environmentVariables"]
        assert env["FIRESTORE_DATABASE"] == "(default)"
    assert all(
        r.inputs["database"] == "(default)" for r in deployment.of_type("gcp:firestore/index:Index")
    )
    assert key(database) in deployment.one(FUNCTION, "ingest").depends_on


@pytest.mark.parametrize(
    ("key_", "value", "named"),
    [
        ("inlet:firestoreDatabase", "Inlet_DB", "inlet:firestoreDatabase"),
        ("inlet:firestoreExisting", "yes", "inlet:firestoreExisting"),
        ("inlet:firestoreManageExisting", "true", "inlet:firestoreManageExisting"),
    ],
)
def test_a_malformed_database_choice_fails_naming_it(key_, value, named):
    from infra.config import InfraConfigError

    with pytest.raises(InfraConfigError) as raised:
        harness.deploy({**harness.BASE_CONFIG, key_: value})
    assert named in str(raised.value)
