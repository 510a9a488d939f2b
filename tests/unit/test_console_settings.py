"""The console's configuration and content security policy (docs/console.md). Pure."""

from __future__ import annotations

import base64

import pytest

from services.common.config import ConfigError, Env
from services.query import console

KEY = "pk_live_" + base64.b64encode(b"clerk.example.com$").decode()


def settings(**env: str) -> console.ConsoleSettings:
    return console.ConsoleSettings.from_env(Env(env))


def test_the_development_sign_in_needs_the_key_and_the_emulator():
    assert settings(INLET_DEV_SIGNING_KEY="/k.pem", FIRESTORE_EMULATOR_HOST="h:1").dev_sign_in
    assert not settings(INLET_DEV_SIGNING_KEY="/k.pem").dev_sign_in  # never on Cloud Run
    assert not settings(FIRESTORE_EMULATOR_HOST="h:1").dev_sign_in


def test_the_policy_allows_only_the_page_the_ingest_api_and_clerk():
    local = console.content_security_policy(settings(INGEST_API_URL="http://127.0.0.1:8082/"))
    assert "default-src 'none'" in local and "script-src 'self';" in local
    assert "connect-src 'self' http://127.0.0.1:8082;" in local
    assert "unsafe" not in local and "frame-ancestors 'none'" in local
    deployed = settings(CLERK_PUBLISHABLE_KEY=KEY, INGEST_API_URL="https://ingest.example")
    policy = console.content_security_policy(deployed)
    assert "script-src 'self' https://clerk.example.com https://challenges.cloudflare.com" in policy
    assert "connect-src 'self' https://ingest.example https://clerk.example.com" in policy
    assert "style-src 'self';" in policy and "unsafe" not in policy
    assert console.page_config(deployed)["clerkScript"].startswith("https://clerk.example.com/")


@pytest.mark.parametrize("key", ["pk_live_nope", "sk_live_abc", "pk_test_" + "A" * 8])
def test_a_malformed_publishable_key_stops_the_service(key):
    with pytest.raises(ConfigError, match="CLERK_PUBLISHABLE_KEY"):
        settings(CLERK_PUBLISHABLE_KEY=key)


def test_every_console_file_is_served_and_nothing_else():
    assets = console.load_assets()
    assert {"index.html", "app.js", "api.js", "console.css"} <= set(assets)
    assert assets["app.js"].content_type == "text/javascript; charset=utf-8"
    assert assets["index.html"].content_type == "text/html; charset=utf-8"
    assert assets["console.css"].content_type == "text/css; charset=utf-8"
    for name in ("../main.py", "console.py", "index.html.bak"):
        with pytest.raises(console.NotFound):
            console.asset(assets, name)


def test_the_page_has_no_inline_script_or_style():
    page = (console.FOLDER / "index.html").read_text()
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    for module in console.FOLDER.glob("*.js"):
        text = module.read_text()
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, module.name
        assert "localStorage" not in text and "sessionStorage" not in text, module.name
