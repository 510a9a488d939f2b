"""What ``pulumi up`` declares, checked under Pulumi's mocks (docs/deploy.md)."""

from __future__ import annotations

import json

import pulumi
import pytest

from infra import config as infra_config
from infra import source
from services.clerk_sync.reconcile_task import ReconcileSettings
from services.common import indexes
from services.common.config import ClerkAuthSettings, Env, FirestoreSettings, TaskSettings
from tests.infra import harness
from tests.infra.harness import PROJECT, PROJECT_NUMBER, REGION, STACK

FUNCTION = "gcp:cloudfunctionsv2/function:Function"
ACCOUNT = "gcp:serviceaccount/account:Account"
# How Pulumi marks a secret value on the wire (a signature key, not a secret).
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105
FUNCTIONS = {"clerkSync": "clerk_sync", "ingest": "ingest", "query": "query"}


@pytest.fixture(scope="module")
def deployment() -> harness.Deployment:
    return harness.deploy()


def named(stem: str) -> str:
    """A project-unique name as the test stack's program gives it."""
    return f"{stem}-{STACK}"


def email(stem: str) -> str:
    return f"{named(stem)}@{PROJECT}.iam.gserviceaccount.com"


def function(deployment: harness.Deployment, key: str) -> dict:
    return deployment.one(FUNCTION, key).inputs


def env(deployment: harness.Deployment, key: str) -> dict[str, str]:
    return function(deployment, key)["serviceConfig"]["environmentVariables"]


def secret_refs(deployment: harness.Deployment, key: str) -> dict[str, dict]:
    refs = function(deployment, key)["serviceConfig"].get("secretEnvironmentVariables", [])
    return {ref["key"]: ref for ref in refs}


def roles(deployment: harness.Deployment) -> list[harness.Declared]:
    return [r for r in deployment.resources if "role" in r.inputs]


# --- Outputs -------------------------------------------------------------------------------------


def test_outputs_give_the_urls_a_user_needs_next(deployment):
    run_app = "https://inlet-{}-test-x7k2q9-ew.a.run.app"  # what the mocks answer as URIs
    assert deployment.exports["clerkWebhookUrl"] == run_app.format("clerk-sync") + "/webhooks/clerk"
    assert deployment.exports["inboundUrlTemplate"] == (
        run_app.format("ingest") + "/webhooks/inbound/{sourceId}"
    )
    assert deployment.exports["ingestApiUrl"] == run_app.format("ingest")
    assert deployment.exports["queryUrl"] == run_app.format("query")
    assert deployment.exports["queueName"] == (
        f"projects/{PROJECT}/locations/{REGION}/queues/inlet-refresh-test-a1b2c3"
    )


# --- Secrets -------------------------------------------------------------------------------------


def test_each_secret_reaches_only_the_service_that_reads_it(deployment):
    # clerk-sync reconciles with the Backend API key; query falls back to Clerk with it.
    assert set(secret_refs(deployment, "clerkSync")) == {"CLERK_WEBHOOK_SECRET", "CLERK_SECRET_KEY"}
    assert set(secret_refs(deployment, "ingest")) == {"SOURCE_KEK"}
    assert set(secret_refs(deployment, "query")) == {"CLERK_SECRET_KEY"}
    accessors = {
        (r.inputs["secretId"], r.inputs["member"])
        for r in deployment.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    }
    assert accessors == {
        (named("inlet-clerk-webhook-secret"), f"serviceAccount:{email('inlet-clerk-sync')}"),
        (named("inlet-clerk-secret-key"), f"serviceAccount:{email('inlet-clerk-sync')}"),
        (named("inlet-source-kek"), f"serviceAccount:{email('inlet-ingest')}"),
        (named("inlet-clerk-secret-key"), f"serviceAccount:{email('inlet-query')}"),
    }
    assert all(
        r.inputs["role"] == "roles/secretmanager.secretAccessor"
        for r in deployment.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    )


def test_secrets_are_referenced_by_numeric_version_never_by_value(deployment):
    for key, variable, expected in (
        ("clerkSync", "CLERK_WEBHOOK_SECRET", "inlet-clerk-webhook-secret"),
        ("clerkSync", "CLERK_SECRET_KEY", "inlet-clerk-secret-key"),
        ("ingest", "SOURCE_KEK", "inlet-source-kek"),
        ("query", "CLERK_SECRET_KEY", "inlet-clerk-secret-key"),
    ):
        ref = secret_refs(deployment, key)[variable]
        assert ref["secret"] == named(expected)
        assert ref["version"].isdigit()  # a number, so a new value rolls a new revision
        assert ref["projectId"] == PROJECT
    # No secret value appears anywhere but in its own version, where it is marked secret.
    versions = deployment.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    outside = json.dumps([r.inputs for r in deployment.resources if r not in versions], default=str)
    for value in harness.SECRETS.values():
        assert value not in outside
    stored = {r.inputs["secretData"]["value"]: r.inputs["secretData"] for r in versions}
    assert set(stored) == set(harness.SECRETS.values())
    assert all(SECRET_SIG in data for data in stored.values())


def test_without_a_clerk_secret_key_no_service_gets_one():
    config = {k: v for k, v in harness.BASE_CONFIG.items() if k != "inlet:clerkSecretKey"}
    deployment = harness.deploy(config)
    assert secret_refs(deployment, "query") == {}
    assert set(secret_refs(deployment, "clerkSync")) == {"CLERK_WEBHOOK_SECRET"}
    secrets = deployment.of_type("gcp:secretmanager/secret:Secret")
    assert {r.inputs["secretId"] for r in secrets} == {
        named("inlet-clerk-webhook-secret"),
        named("inlet-source-kek"),
    }
    assert harness.CLERK_SECRET_KEY not in deployment.dump()


# --- IAM -----------------------------------------------------------------------------------------


def test_no_binding_grants_editor_or_owner(deployment):
    granted = {r.inputs["role"] for r in roles(deployment)}
    assert granted and not granted & {"roles/editor", "roles/owner", "roles/viewer"}


def test_project_wide_roles_are_only_those_with_nothing_narrower(deployment):
    bindings = deployment.of_type("gcp:projects/iAMMember:IAMMember")
    project_wide = {
        (r.inputs["role"], r.inputs["member"]) for r in bindings if "condition" not in r.inputs
    }
    assert project_wide == {
        ("roles/logging.logWriter", f"serviceAccount:{email('inlet-build')}"),
    }
    # The build reads the bucket Cloud Run functions copy the source into, which exists only
    # after the first deploy, and nothing else.
    (conditional,) = [
        r.inputs
        for r in bindings
        if "condition" in r.inputs and r.inputs["role"] == "roles/storage.objectViewer"
    ]
    assert conditional["member"] == f"serviceAccount:{email('inlet-build')}"
    bucket = f"projects/_/buckets/gcf-v2-sources-{PROJECT_NUMBER}-{REGION}"
    assert conditional["condition"]["expression"] == (
        f'resource.name.startsWith("{bucket}/") || resource.name == "{bucket}"'
    )


def test_datastore_user_is_conditioned_on_the_stacks_database(deployment):
    bindings = deployment.of_type("gcp:projects/iAMMember:IAMMember")
    datastore = [r.inputs for r in bindings if r.inputs["role"] == "roles/datastore.user"]
    assert {r["member"] for r in datastore} == {
        f"serviceAccount:{email(a)}" for a in ("inlet-clerk-sync", "inlet-ingest", "inlet-query")
    }
    database = f"projects/{PROJECT}/databases/{named('inlet')}"
    for binding in datastore:
        assert binding["condition"]["expression"] == f'resource.name == "{database}"'


def test_enqueuers_are_the_three_services_on_the_queue_and_as_the_tasks_identity(deployment):
    queue = deployment.one("gcp:cloudtasks/queue:Queue", "refresh-queue").inputs
    enqueuers = deployment.of_type("gcp:cloudtasks/queueIamMember:QueueIamMember")
    assert {(r.inputs["name"], r.inputs["role"], r.inputs["member"]) for r in enqueuers} == {
        (queue["name"], "roles/cloudtasks.enqueuer", f"serviceAccount:{email(a)}")
        for a in ("inlet-clerk-sync", "inlet-ingest", "inlet-query")
    }
    acting = deployment.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    tasks = f"projects/{PROJECT}/serviceAccounts/{email('inlet-tasks')}"
    assert {
        (r.inputs["serviceAccountId"], r.inputs["role"], r.inputs["member"]) for r in acting
    } == {
        (tasks, "roles/iam.serviceAccountUser", f"serviceAccount:{email(a)}")
        for a in ("inlet-clerk-sync", "inlet-ingest", "inlet-query")
    }


def test_the_build_account_reads_only_the_source_bucket_and_writes_only_its_repository(
    deployment,
):
    build = f"serviceAccount:{email('inlet-build')}"
    bucket = deployment.one("gcp:storage/bucket:Bucket", "source-bucket").inputs
    (reads,) = deployment.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert reads.inputs == {
        "bucket": bucket["name"],
        "role": "roles/storage.objectViewer",
        "member": build,
    }
    (writes,) = deployment.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert writes.inputs["repository"] == named("inlet-functions")
    assert (writes.inputs["role"], writes.inputs["member"]) == (
        "roles/artifactregistry.writer",
        build,
    )
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["uniformBucketLevelAccess"] is True


def test_every_service_is_publicly_invokable_on_its_own_cloud_run_service(deployment):
    invokers = deployment.of_type("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")
    assert {(r.inputs["name"], r.inputs["role"], r.inputs["member"]) for r in invokers} == {
        (
            f"projects/{PROJECT}/locations/{REGION}/services/{named(f'inlet-{name}')}",
            "roles/run.invoker",
            "allUsers",
        )
        for name in ("clerk-sync", "ingest", "query")
    }
    # allUsers appears nowhere else.
    others = [r for r in roles(deployment) if r not in invokers]
    assert all(r.inputs["member"].startswith("serviceAccount:inlet-") for r in others)


def test_one_account_per_service_plus_tasks_and_build(deployment):
    assert {r.inputs["accountId"] for r in deployment.of_type(ACCOUNT)} == {
        named(a)
        for a in ("inlet-clerk-sync", "inlet-ingest", "inlet-query", "inlet-tasks", "inlet-build")
    }


# --- Functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "target"), FUNCTIONS.items())
def test_each_function_runs_its_target_as_its_account_built_by_the_build_account(
    deployment, key, target
):
    declared = function(deployment, key)
    name = target.replace("_", "-")
    assert declared["name"] == named(f"inlet-{name}")
    assert declared["location"] == REGION
    build = declared["buildConfig"]
    assert build["entryPoint"] == target
    assert build["runtime"] == "python311"
    assert build["serviceAccount"] == f"projects/{PROJECT}/serviceAccounts/{email('inlet-build')}"
    assert build["dockerRepository"].endswith(f"/repositories/{named('inlet-functions')}")
    storage = build["source"]["storageSource"]
    assert storage["bucket"] == f"{PROJECT}-inlet-source-{STACK}"
    assert storage["object"] == source.bundle().object_name
    assert declared["serviceConfig"]["serviceAccountEmail"] == email(f"inlet-{name}")


def test_each_function_gets_exactly_the_environment_its_settings_read(deployment):
    base = {"GOOGLE_CLOUD_PROJECT": PROJECT, "FIRESTORE_DATABASE": named("inlet")}
    query = named("inlet-query")
    tasks = {
        "TASKS_QUEUE": deployment.exports["queueName"],
        "REFRESH_URL": f"https://{query}-{PROJECT_NUMBER}.{REGION}.run.app/tasks/refresh",
        "TASKS_SERVICE_ACCOUNT": email("inlet-tasks"),
        "TASKS_AUDIENCE": f"inlet-tasks-{PROJECT}-test",
    }
    assert env(deployment, "clerkSync") == {
        **base,
        **tasks,
        "CLERK_API_URL": "https://api.clerk.com",
        # Cloud Scheduler's 30-minute attempt, less the room the run keeps to finish and answer.
        "RECONCILE_BUDGET_S": "1500",
    }
    console = f"https://{query}-{PROJECT_NUMBER}.{REGION}.run.app"  # the console's origin
    clerk = {
        "CLERK_ISSUER": "https://clerk.example.com",
        "CLERK_AUTHORIZED_PARTIES": f"https://app.example.com,{console}",
    }
    cors = {"CORS_ORIGINS": "https://app.example.com"}
    ingest_cors = {"CORS_ORIGINS": f"https://app.example.com,{console}"}
    assert env(deployment, "ingest") == {**base, **clerk, **tasks, **ingest_cors}
    assert env(deployment, "query") == {
        **base,
        **clerk,
        **tasks,
        **cors,
        "CLERK_API_URL": "https://api.clerk.com",
        "INGEST_API_URL": f"https://{named('inlet-ingest')}-{PROJECT_NUMBER}.{REGION}.run.app",
    }
    assert deployment.exports["consoleUrl"] == f"{console}/console/"
    # The services' settings accept them as they are (their own start-up checks), and
    # clerk-sync checks /tasks/reconcile's tokens with the same settings as the sweep's.
    reconcile = ReconcileSettings.from_env(
        Env({**env(deployment, "clerkSync"), "CLERK_SECRET_KEY": "sk_x"})
    )
    assert (reconcile.budget_s, reconcile.clerk.api_url) == (1500, "https://api.clerk.com")
    assert TaskSettings.from_env(Env(env(deployment, "clerkSync"))) == TaskSettings.from_env(
        Env(env(deployment, "ingest"))
    )
    for key in ("ingest", "query"):
        values = Env(env(deployment, key))
        assert FirestoreSettings.from_env(values).project == PROJECT
        assert ClerkAuthSettings.from_env(values).jwks_url == (
            "https://clerk.example.com/.well-known/jwks.json"
        )
        assert TaskSettings.from_env(values).queue == deployment.exports["queueName"]


PUBLISHABLE_KEY = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"  # clerk.example.com$


def test_the_development_sign_in_is_never_deployed(deployment):
    for key in FUNCTIONS:
        assert "INLET_DEV_SIGNING_KEY" not in env(deployment, key)
        assert "FIRESTORE_EMULATOR_HOST" not in env(deployment, key)


def test_a_malformed_publishable_key_stops_the_deploy():
    config = {**harness.BASE_CONFIG, "inlet:clerkPublishableKey": "pk_live_nope"}
    with pytest.raises(infra_config.InfraConfigError, match="inlet:clerkPublishableKey"):
        harness.deploy(config)


def test_optional_settings_reach_the_services_that_read_them():
    config = {
        **harness.BASE_CONFIG,
        "inlet:clerkJwksUrl": "https://clerk.example.com/jwks",
        "inlet:ingestPublicUrl": "https://events.example.com",
        "inlet:clerkApiUrl": "https://clerk-api.example.com",
        "inlet:firestoreDatabase": "inlet",
        "inlet:tasksAudience": "inlet-refresh",
        "inlet:clerkPublishableKey": PUBLISHABLE_KEY,
    }
    deployment = harness.deploy(config)
    assert env(deployment, "query")["CLERK_PUBLISHABLE_KEY"] == PUBLISHABLE_KEY
    assert "CLERK_PUBLISHABLE_KEY" not in env(deployment, "ingest")
    assert env(deployment, "ingest")["INGEST_PUBLIC_URL"] == "https://events.example.com"
    assert "INGEST_PUBLIC_URL" not in env(deployment, "query")
    for key in ("clerkSync", "query"):
        assert env(deployment, key)["CLERK_API_URL"] == "https://clerk-api.example.com"
    for key in ("ingest", "query"):
        assert env(deployment, key)["CLERK_JWKS_URL"] == "https://clerk.example.com/jwks"
        assert env(deployment, key)["TASKS_AUDIENCE"] == "inlet-refresh"
    for key in FUNCTIONS:
        assert env(deployment, key)["FIRESTORE_DATABASE"] == "inlet"
    database = deployment.one("gcp:firestore/database:Database", "firestore").inputs
    assert database["name"] == "inlet"
    job = deployment.one("gcp:cloudscheduler/job:Job", "sweep").inputs
    assert job["httpTarget"]["oidcToken"]["audience"] == "inlet-refresh"


def test_scaling_defaults_give_every_concurrent_service_a_full_cpu(deployment):
    for key in FUNCTIONS:
        service = function(deployment, key)["serviceConfig"]
        default = infra_config.DEFAULT_SCALING[key]
        assert service["minInstanceCount"] == default.min_instances == 0
        assert service["maxInstanceCount"] == default.max_instances
        assert service["maxInstanceRequestConcurrency"] == default.concurrency > 1
        assert float(service["availableCpu"]) >= 1
        assert service["availableMemory"] == default.memory


def test_scaling_comes_from_config():
    config = {
        **harness.BASE_CONFIG,
        "inlet:ingest": json.dumps(
            {"minInstances": 1, "maxInstances": 5, "concurrency": 40, "memory": "1Gi", "cpu": "2"}
        ),
        "inlet:query": json.dumps({"concurrency": 1, "cpu": "0.5", "memory": "256Mi"}),
    }
    deployment = harness.deploy(config)
    ingest = function(deployment, "ingest")["serviceConfig"]
    assert (
        ingest["minInstanceCount"],
        ingest["maxInstanceCount"],
        ingest["maxInstanceRequestConcurrency"],
        ingest["availableMemory"],
        ingest["availableCpu"],
    ) == (1, 5, 40, "1Gi", "2")
    query = function(deployment, "query")["serviceConfig"]
    assert (query["maxInstanceRequestConcurrency"], query["availableCpu"]) == (1, "0.5")
    clerk_sync = function(deployment, "clerkSync")["serviceConfig"]
    assert clerk_sync["maxInstanceCount"] == infra_config.DEFAULT_SCALING["clerkSync"].max_instances


# --- Queue and sweep -----------------------------------------------------------------------------


def test_queue_has_a_suffixed_name_and_explicit_limits(deployment):
    queue = deployment.one("gcp:cloudtasks/queue:Queue", "refresh-queue").inputs
    # The stack's suffix, then the random one kept in its state.
    assert queue["name"] == "inlet-refresh-test-a1b2c3"
    assert queue["location"] == REGION
    limits = infra_config.QueueLimits()
    assert queue["rateLimits"] == {
        "maxDispatchesPerSecond": limits.max_dispatches_per_second,
        "maxConcurrentDispatches": limits.max_concurrent_dispatches,
    }
    assert queue["retryConfig"] == {
        "maxAttempts": limits.max_attempts,
        "minBackoff": limits.min_backoff,
        "maxBackoff": limits.max_backoff,
        "maxDoublings": limits.max_doublings,
        "maxRetryDuration": limits.max_retry_duration,
    }
    (suffix,) = deployment.of_type("random:index/randomId:RandomId")
    assert suffix.inputs["byteLength"] == 3


def test_queue_limits_come_from_config():
    config = {
        **harness.BASE_CONFIG,
        "inlet:queue": json.dumps(
            {"maxDispatchesPerSecond": 5, "maxConcurrentDispatches": 3, "maxAttempts": 7}
        ),
    }
    queue = harness.deploy(config).one("gcp:cloudtasks/queue:Queue", "refresh-queue").inputs
    assert queue["rateLimits"] == {"maxDispatchesPerSecond": 5, "maxConcurrentDispatches": 3}
    assert queue["retryConfig"]["maxAttempts"] == 7


def test_the_sweep_calls_ingest_every_minute_with_the_tasks_identity_token(deployment):
    job = deployment.one("gcp:cloudscheduler/job:Job", "sweep").inputs
    assert job["schedule"] == "* * * * *"
    assert job["region"] == REGION
    target = job["httpTarget"]
    assert target["uri"] == deployment.exports["ingestApiUrl"] + "/tasks/sweep"
    assert target["httpMethod"] == "POST"
    ingest = env(deployment, "ingest")
    assert target["oidcToken"] == {
        "serviceAccountEmail": ingest["TASKS_SERVICE_ACCOUNT"],
        "audience": ingest["TASKS_AUDIENCE"],
    }
    assert "oauthToken" not in target


# --- Firestore -----------------------------------------------------------------------------------


def test_ttl_policies_equal_the_shared_list(deployment):
    fields = deployment.of_type("gcp:firestore/field:Field")
    ttl = {(r.inputs["collection"], r.inputs["field"]) for r in fields if "ttlConfig" in r.inputs}
    assert ttl == {(p.collection_group, p.field) for p in indexes.TTL_POLICIES}


def test_index_exemptions_equal_the_shared_list(deployment):
    fields = deployment.of_type("gcp:firestore/field:Field")
    exempt = {
        (r.inputs["collection"], r.inputs["field"])
        for r in fields
        if r.inputs.get("indexConfig") == {}  # no single-field index at all
    }
    assert exempt == {(e.collection_group, e.field) for e in indexes.INDEX_EXEMPTIONS}
    assert all(r.inputs["database"] == named("inlet") for r in fields)


def test_composite_indexes_equal_the_shared_list(deployment):
    declared = sorted(
        (r.inputs["collection"], tuple((f["fieldPath"], f["order"]) for f in r.inputs["fields"]))
        for r in deployment.of_type("gcp:firestore/index:Index")
    )
    assert declared == sorted((i.collection_group, i.fields) for i in indexes.COMPOSITE_INDEXES)
    assert all(
        r.inputs["queryScope"] == "COLLECTION"
        for r in deployment.of_type("gcp:firestore/index:Index")
    )


def test_the_database_is_native_and_kept_on_destroy(deployment):
    database = deployment.one("gcp:firestore/database:Database", "firestore").inputs
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["locationId"] == REGION
    assert database["deletionPolicy"] == "ABANDON"


# --- APIs ----------------------------------------------------------------------------------------


def test_every_api_is_enabled_and_kept_on_destroy(deployment):
    services = deployment.of_type("gcp:projects/service:Service")
    enabled = {r.inputs["service"] for r in services}
    for api in ("firestore", "cloudtasks", "cloudscheduler", "secretmanager", "cloudfunctions"):
        assert f"{api}.googleapis.com" in enabled
    assert {"run.googleapis.com", "cloudbuild.googleapis.com"} <= enabled
    assert all(r.inputs["disableOnDestroy"] is False for r in services)


# --- Configuration errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "gcp:project",
        "inlet:clerkWebhookSecret",
        "inlet:sourceKek",
        "inlet:clerkIssuer",
        "inlet:clerkAuthorizedParties",
    ],
)
def test_a_missing_required_value_fails_naming_it(key):
    config = {k: v for k, v in harness.BASE_CONFIG.items() if k != key}
    with pytest.raises(infra_config.InfraConfigError) as raised:
        harness.deploy(config)
    assert key in str(raised.value)
    assert "pulumi config set" in str(raised.value)
    if key in harness.SECRETS:
        assert "--secret" in str(raised.value)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("inlet:sourceKek", "k1:c2hvcnQ=", "inlet:sourceKek"),
        ("inlet:clerkWebhookSecret", "not-a-whsec", "inlet:clerkWebhookSecret"),
        ("inlet:clerkWebhookSecret", "whsec_not*base64", "inlet:clerkWebhookSecret"),
        ("inlet:clerkIssuer", "http://clerk.example.com", "inlet:clerkIssuer"),
        ("inlet:ingest", json.dumps({"cpu": "0.5"}), "inlet:ingest.cpu"),
        ("inlet:query", json.dumps({"maxInstance": 3}), "inlet:query"),
        ("inlet:clerkSync", json.dumps({"minInstances": 5, "maxInstances": 2}), "inlet:clerkSync"),
        ("inlet:queue", json.dumps({"maxDispatchesPerSecond": 0}), "inlet:queue"),
    ],
)
def test_a_malformed_value_fails_naming_it_without_echoing_secrets(key, value, named):
    with pytest.raises(infra_config.InfraConfigError) as raised:
        harness.deploy({**harness.BASE_CONFIG, key: value})
    assert named in str(raised.value)
    if key in harness.SECRETS:
        assert value not in str(raised.value)


# --- Order ---------------------------------------------------------------------------------------


def test_every_resource_waits_for_the_apis(deployment):
    apis = {f"{r.typ}::{r.name}" for r in deployment.of_type("gcp:projects/service:Service")}
    assert len(apis) >= 10
    for declared in deployment.resources:
        if declared.typ in ("gcp:projects/service:Service", "random:index/randomId:RandomId"):
            continue
        assert apis <= declared.depends_on, f"{declared.typ} {declared.name}"


def test_functions_wait_for_every_grant_their_deploy_and_build_check(deployment):
    invokers = deployment.of_type("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")
    grants = {f"{r.typ}::{r.name}" for r in roles(deployment) if r not in invokers}
    assert len(grants) >= 10
    for declared in deployment.of_type(FUNCTION):
        assert grants <= declared.depends_on, declared.name


def test_the_loaded_configuration_never_shows_a_secret_in_its_repr():
    pulumi.runtime.set_all_config(harness.BASE_CONFIG, list(harness.SECRETS))
    shown = repr(infra_config.load())
    assert "clerk.example.com" in shown
    assert not any(value in shown for value in harness.SECRETS.values())
