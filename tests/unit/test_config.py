"""Configuration from the environment, validated once at start-up (docs/operations.md
"Configuration")."""

from __future__ import annotations

import pytest

from services.common.config import (
    GOOGLE_OIDC_CERTS_URL,
    GOOGLE_OIDC_ISSUER,
    ClerkAuthSettings,
    ConfigError,
    Env,
    FirestoreSettings,
    TaskSettings,
)

QUEUE = "projects/demo/locations/europe-west1/queues/refresh"
TASKS = {
    "TASKS_QUEUE": QUEUE,
    "REFRESH_URL": "https://query.example.run.app/tasks/refresh",
    "TASKS_SERVICE_ACCOUNT": "tasks@demo.iam.gserviceaccount.com",
    "TASKS_AUDIENCE": "inlet-tasks",
}


# --- Env -----------------------------------------------------------------------------------------


def test_a_set_variable_is_read_without_surrounding_space():
    assert Env({"GOOGLE_CLOUD_PROJECT": "  demo \n"}).str("GOOGLE_CLOUD_PROJECT") == "demo"


@pytest.mark.parametrize("environ", [{}, {"CLERK_ISSUER": ""}, {"CLERK_ISSUER": "   "}])
def test_a_missing_required_variable_is_a_config_error_naming_it(environ):
    with pytest.raises(ConfigError, match="CLERK_ISSUER"):
        Env(environ).str("CLERK_ISSUER")


def test_a_missing_variable_with_a_default_reads_as_the_default():
    assert Env({}).str("FIRESTORE_DATABASE", "(default)") == "(default)"
    assert Env({"FIRESTORE_DATABASE": " "}).str("FIRESTORE_DATABASE", "(default)") == "(default)"


def test_a_set_variable_wins_over_its_default():
    assert Env({"FIRESTORE_DATABASE": "inlet"}).str("FIRESTORE_DATABASE", "(default)") == "inlet"


def test_an_optional_variable_reads_as_none_when_unset_or_blank():
    assert Env({}).optional("FIRESTORE_EMULATOR_HOST") is None
    assert Env({"FIRESTORE_EMULATOR_HOST": " "}).optional("FIRESTORE_EMULATOR_HOST") is None
    assert Env({"FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080"}).optional(
        "FIRESTORE_EMULATOR_HOST"
    ) == ("127.0.0.1:8080")


@pytest.mark.parametrize(
    ("raw", "items"),
    [
        ("https://a.example,https://b.example", ("https://a.example", "https://b.example")),
        (" https://a.example , https://b.example ", ("https://a.example", "https://b.example")),
        ("https://a.example,,", ("https://a.example",)),
        ("one", ("one",)),
        ("", ()),
        (" , ", ()),
    ],
)
def test_a_list_variable_is_split_on_commas_without_blanks(raw, items):
    assert Env({"CORS_ORIGINS": raw}).list("CORS_ORIGINS") == items


def test_an_unset_list_variable_is_empty():
    assert Env({}).list("CORS_ORIGINS") == ()


@pytest.mark.parametrize(("raw", "value"), [("5", 5), (" 42 ", 42), ("-1", -1), ("0", 0)])
def test_an_int_variable_is_parsed(raw, value):
    assert Env({"RETENTION": raw}).int("RETENTION", 1000) == value


@pytest.mark.parametrize("environ", [{}, {"RETENTION": ""}, {"RETENTION": "  "}])
def test_an_unset_int_variable_reads_as_its_default(environ):
    assert Env(environ).int("RETENTION", 1000) == 1000


@pytest.mark.parametrize("raw", ["ten", "1.5", "1e3", "0x10"])
def test_a_malformed_int_variable_is_a_config_error_naming_it(raw):
    with pytest.raises(ConfigError, match="RETENTION"):
        Env({"RETENTION": raw}).int("RETENTION", 1000)


def test_env_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("INLET_TEST_VARIABLE", "from-process")

    assert Env().str("INLET_TEST_VARIABLE") == "from-process"


# --- Settings ------------------------------------------------------------------------------------


def test_firestore_settings_default_to_the_default_database_without_emulator():
    settings = FirestoreSettings.from_env(Env({"GOOGLE_CLOUD_PROJECT": "demo"}))

    assert settings == FirestoreSettings("demo", "(default)", None)


def test_firestore_settings_require_the_project():
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        FirestoreSettings.from_env(Env({"FIRESTORE_DATABASE": "inlet"}))


def test_clerk_jwks_url_defaults_to_the_issuers_well_known_path():
    environ = {"CLERK_ISSUER": "https://clerk.example.com/", "CLERK_AUTHORIZED_PARTIES": "a"}
    settings = ClerkAuthSettings.from_env(Env(environ))

    assert settings.issuer == "https://clerk.example.com"
    assert settings.jwks_url == "https://clerk.example.com/.well-known/jwks.json"
    assert settings.authorized_parties == ("a",)


def test_authorized_parties_are_required():
    with pytest.raises(ConfigError, match="CLERK_AUTHORIZED_PARTIES"):
        ClerkAuthSettings.from_env(Env({"CLERK_ISSUER": "https://clerk.example.com"}))


def test_clerk_settings_read_an_explicit_jwks_url_and_authorized_parties():
    settings = ClerkAuthSettings.from_env(
        Env(
            {
                "CLERK_ISSUER": "https://clerk.example.com",
                "CLERK_JWKS_URL": "http://127.0.0.1:9999/jwks",
                "CLERK_AUTHORIZED_PARTIES": "https://app.example.com, http://localhost:3000",
            }
        )
    )

    assert settings.jwks_url == "http://127.0.0.1:9999/jwks"
    assert settings.authorized_parties == ("https://app.example.com", "http://localhost:3000")


def test_clerk_settings_require_the_issuer():
    with pytest.raises(ConfigError, match="CLERK_ISSUER"):
        ClerkAuthSettings.from_env(Env({"CLERK_JWKS_URL": "http://127.0.0.1:9999/jwks"}))


def test_task_settings_default_to_googles_oidc_issuer():
    settings = TaskSettings.from_env(Env(TASKS))

    assert settings.queue == QUEUE
    assert settings.oidc_issuer == GOOGLE_OIDC_ISSUER
    assert settings.oidc_certs_url == GOOGLE_OIDC_CERTS_URL
    assert settings.emulator_host is None
    assert settings.dev_signing_key_file is None


@pytest.mark.parametrize("missing", sorted(TASKS))
def test_task_settings_name_each_missing_required_variable(missing):
    environ = {k: v for k, v in TASKS.items() if k != missing}

    with pytest.raises(ConfigError, match=missing):
        TaskSettings.from_env(Env(environ))


@pytest.mark.parametrize(
    "queue",
    [
        "refresh",
        "projects/demo/queues/refresh",
        "projects/demo/locations/europe-west1/queues/refresh/tasks/1",
        "project/demo/locations/europe-west1/queues/refresh",
        "projects/demo/regions/europe-west1/queues/refresh",
        "queues/refresh/locations/europe-west1/projects/demo",
        "projects/demo/locations/europe-west1/queues/",
        "projects//locations/europe-west1/queues/refresh",
        "/projects/demo/locations/europe-west1/queues/refresh",
    ],
)
def test_task_queue_must_be_a_full_queue_name(queue):
    with pytest.raises(ConfigError, match="TASKS_QUEUE"):
        TaskSettings.from_env(Env({**TASKS, "TASKS_QUEUE": queue}))


def test_the_tasks_emulator_requires_the_development_signing_key():
    with pytest.raises(ConfigError, match="INLET_DEV_SIGNING_KEY"):
        TaskSettings.from_env(Env({**TASKS, "TASKS_EMULATOR_HOST": "127.0.0.1:8123"}))


def test_the_tasks_emulator_with_a_signing_key_and_a_local_issuer_is_accepted():
    settings = TaskSettings.from_env(
        Env(
            {
                **TASKS,
                "TASKS_EMULATOR_HOST": "127.0.0.1:8123",
                "INLET_DEV_SIGNING_KEY": ".inlet/dev-signing-key.pem",
                "OIDC_ISSUER": "http://127.0.0.1:9999",
                "OIDC_CERTS_URL": "http://127.0.0.1:9999/jwks",
            }
        )
    )

    assert settings.emulator_host == "127.0.0.1:8123"
    assert settings.dev_signing_key_file == ".inlet/dev-signing-key.pem"
    assert settings.oidc_issuer == "http://127.0.0.1:9999"
    assert settings.oidc_certs_url == "http://127.0.0.1:9999/jwks"


def test_a_signing_key_without_the_emulator_is_allowed():
    settings = TaskSettings.from_env(
        Env({**TASKS, "INLET_DEV_SIGNING_KEY": ".inlet/dev-signing-key.pem"})
    )

    assert settings.emulator_host is None
