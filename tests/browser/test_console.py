"""What a person sees in the console (docs/console.md): signing in, creating a source and
copying its secret once, a block changing on the page when an event arrives, rotation refusing
the old secret in the deliveries view, tenancy, and partner-written markup shown as text.
Against the local stack, in headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
import time

import requests
from playwright.sync_api import expect

from tests import partner
from tests.browser.conftest import WAIT_MS, screenshot
from tests.partner import QueryAPI, SourceAPI, count_block
from tests.support import request_log


def create_source(page, label: str) -> dict:
    """Create a source from the sources screen; the secret is copied from the reveal panel."""
    page.goto(page.url.split("#")[0] + "#sources")
    page.fill("#new-label", label)
    page.click("button:has-text('Create source')")
    page.wait_for_selector("#revealed-secret")
    page.click("#copy-secret")
    page.wait_for_selector(".copied:has-text('Copied')")
    secret = page.evaluate("navigator.clipboard.readText()")
    assert secret == page.text_content("#revealed-secret")
    url = page.text_content("#revealed-url")
    return {"secret": secret, "url": url, "id": url.rsplit("/", 1)[1]}


def create_metric_block(page, block_id: str, source_id: str, label: str) -> None:
    page.goto(page.url.split("#")[0] + "#editor")
    page.fill("#f-blockId", block_id)
    page.select_option("#f-source", source_id)
    page.select_option("#f-template", "metric")
    page.select_option("#f-window", "1h")
    page.select_option("#f-op", "count")
    page.fill("#f-label", label)
    page.click("button:has-text('Create block')")
    page.wait_for_selector(f"[data-block='{block_id}']")


def test_new_event_updates_metric_block_without_reload(console, clean, capsys):
    page = console("user_alice")
    page.wait_for_selector("text=No blocks yet: create one in the block editor.")
    screenshot(page, "blocks-empty")
    source = create_source(page, "Orders")
    assert page.is_visible("text=Shown once: copy it now.")
    assert "hmac.new(secret.encode()" in page.text_content(".snippet")
    screenshot(page, "sources-created")
    create_metric_block(page, "orders-1h", source["id"], "Orders (1h)")
    expect(page.locator("[data-block='orders-1h'] .value")).to_have_text("0")
    page.evaluate("window.__sameDocument = true")
    sent = partner.send(source["url"], source["secret"], {"amount": 3})
    posted = time.monotonic()
    assert sent.status_code == 202, sent.text
    expect(page.locator("[data-block='orders-1h'] .value")).to_have_text("1", timeout=WAIT_MS)
    seen = time.monotonic() - posted
    seen_at = dt.datetime.now(dt.UTC)
    assert page.evaluate("window.__sameDocument") is True  # no reload
    token = clean.issuer.session_token("user_alice")
    written = QueryAPI(clean.url("query"), token).get_block("orders-1h").json()["refreshedAt"]
    after_refresh = (seen_at - dt.datetime.fromisoformat(written)).total_seconds()
    assert page.text_content("[data-block='orders-1h'] .label") == "Orders (1h)"
    screenshot(page, "blocks-live")
    with capsys.disabled():
        print(
            f"\n[console] event posted -> metric on the page: {seen:.2f} s; "
            f"refresh that wrote it -> on the page: at most {after_refresh:.2f} s"
        )
    assert page.errors == []


def test_rotating_the_secret_shows_the_old_one_refused_in_deliveries(console):
    page = console("user_alice")
    source = create_source(page, "Payments")
    page.click(f"[data-source='{source['id']}'] button:has-text('Rotate secret')")
    page.wait_for_selector("#reveal h2:has-text('rotated')")
    rotated = page.text_content("#revealed-secret")
    assert rotated != source["secret"]
    refused = partner.send(source["url"], source["secret"], {"amount": 1})
    assert refused.status_code == 401, refused.text
    accepted = partner.send(source["url"], rotated, {"amount": 2})
    assert accepted.status_code == 202, accepted.text
    page.click(f"[data-source='{source['id']}'] button:has-text('Deliveries')")
    page.wait_for_selector("#deliveries tr.delivery")
    refused_row = page.locator("#deliveries td.status:text-is('401')")
    for _ in range(20):  # the refusal is recorded within a second of the request
        if refused_row.count():
            break
        page.click("#reload-deliveries")
        page.wait_for_timeout(250)
    assert refused_row.count() == 1
    assert page.locator("#deliveries td.status:text-is('202')").count() == 1
    screenshot(page, "sources-deliveries")
    page.click(f"[data-source='{source['id']}'] button:has-text('Delete')")
    page.wait_for_selector("dialog h2:has-text('Delete source “Payments”?')")
    page.click("dialog button:has-text('Delete “Payments”')")
    page.wait_for_selector("text=No sources yet: create one above")
    assert partner.send(source["url"], rotated, {"amount": 3}).status_code == 404


def test_another_tenants_sources_and_blocks_never_appear(console, clean):
    alice = SourceAPI(clean.url("ingest"), clean.issuer.session_token("user_alice"))
    theirs = alice.create("Alice private").json()
    alice_blocks = QueryAPI(clean.url("query"), clean.issuer.session_token("user_alice"))
    assert alice_blocks.put_block("alice-count", count_block(theirs["id"])).status_code == 201
    org_api = SourceAPI(clean.url("ingest"), clean.issuer.session_token("user_alice", "org_a"))
    assert org_api.create("Org A private").status_code == 201
    page = console("user_bob")
    page.wait_for_selector("text=No blocks yet: create one in the block editor.")
    page.goto(page.url.split("#")[0] + "#sources")
    page.wait_for_selector("text=No sources yet: create one above")
    mine = create_source(page, "Bob's")
    page.wait_for_selector(f"[data-source='{mine['id']}']")
    assert page.locator("[data-source]").count() == 1
    text = page.text_content("main")
    assert "Alice private" not in text and "Org A private" not in text
    page.goto(page.url.split("#")[0] + "#editor/alice-count")
    page.wait_for_selector("text=no such block")
    in_org = console("user_bob", org="org_b")
    in_org.goto(in_org.url.split("#")[0] + "#sources")
    in_org.wait_for_selector("text=No sources yet: create one above")
    screenshot(in_org, "sources-empty")


HOSTILE = '<img src=x onerror="window.__xss=1">'
CLOSER = "</script><script>window.__xss=2</script>"


def test_event_markup_shows_as_text_and_runs_nothing(console, clean):
    token = clean.issuer.session_token("user_alice")
    sources = SourceAPI(clean.url("ingest"), token)
    source = sources.create(f"Label {HOSTILE}").json()
    sent = partner.send(source["url"], source["secret"], {"name": HOSTILE, "note": CLOSER})
    assert sent.status_code == 202, sent.text
    dashboard = QueryAPI(clean.url("query"), token)
    for block_id, config, fields, template in (
        ("latest", {"type": "webhook.latest"}, {"body": {"source": "$"}}, "json"),
        ("list", {"type": "webhook.list"}, {"rows": {"source": "$"}}, "table"),
        ("label", {"type": "webhook.latest"}, {"label": {"literal": HOSTILE}}, "metric"),
    ):
        body = {
            "binding": {
                "dataSourceId": source["id"],
                "queryConfig": config,
                "projection": {"fields": fields},
            },
            "widget": {"template": template, "data": {"value": CLOSER}},
        }
        assert dashboard.put_block(block_id, body).status_code == 201
    page = console("user_alice")
    page.wait_for_selector("[data-block='list'] td")
    blocks = page.text_content("#blocks")
    assert HOSTILE in blocks and CLOSER in blocks
    assert json.dumps(HOSTILE) in page.text_content("[data-block='latest'] .json")
    screenshot(page, "blocks-markup-as-text")
    page.goto(page.url.split("#")[0] + "#sources")
    page.wait_for_selector(f"[data-source='{source['id']}']")
    assert HOSTILE in page.text_content(f"[data-source='{source['id']}'] th")
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.errors == []


def test_block_editor_shows_server_errors_beside_the_field_and_deletes(console, clean):
    token = clean.issuer.session_token("user_alice")
    source = SourceAPI(clean.url("ingest"), token).create("Errors").json()
    page = console("user_alice")
    page.goto(page.url.split("#")[0] + "#editor")
    page.fill("#f-blockId", "errors-sum")
    page.select_option("#f-template", "chart")
    page.select_option("#f-op", "sum")
    page.fill("#f-field", "a..b")
    page.click("button:has-text('Create block')")
    page.wait_for_selector("#err-field:has-text('field')")
    assert page.text_content("#err-form") == ""
    assert page.get_attribute("#f-field", "aria-invalid") == "true"
    screenshot(page, "editor-error")
    page.fill("#f-field", "amount")
    page.select_option("#f-window", "7d")
    page.select_option("#f-bucket", "1m")
    page.click("button:has-text('Create block')")
    page.wait_for_selector("#err-bucket:has-text('1h or 1d')")
    page.select_option("#f-bucket", "1h")
    page.click("button:has-text('Create block')")
    page.wait_for_selector("[data-block='errors-sum'] svg.chart")
    partner.send(source["url"], source["secret"], {"amount": 5})
    page.click("[data-block='errors-sum'] a:has-text('Edit')")
    page.wait_for_selector("#delete-block")
    page.click("#delete-block")
    page.wait_for_selector("text=No blocks yet: create one in the block editor.")


def test_the_page_is_usable_at_phone_width_and_by_keyboard(console, clean):
    token = clean.issuer.session_token("user_alice")
    source = SourceAPI(clean.url("ingest"), token).create("Phone").json()
    assert QueryAPI(clean.url("query"), token).put_block("c", count_block(source["id"])).ok
    page = console("user_alice", width=390, height=844)
    page.wait_for_selector("[data-block='c'] .value")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing forces a sideways scroll
    screenshot(page, "blocks-phone")
    page.keyboard.press("Tab")  # the skip link first, then the screens
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Sources":
            break
    page.keyboard.press("Enter")
    page.wait_for_selector(f"[data-source='{source['id']}']")


def test_the_console_is_served_with_a_strict_csp_and_cache_headers(clean):
    base = clean.url("query")
    page = requests.get(clean.console_url(), timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert f"connect-src 'self' {clean.url('ingest')}" in policy
    assert "<script>" not in page.text and " style=" not in page.text
    again = requests.get(
        f"{base}/console/app.js", headers={"If-None-Match": page.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 200 and again.headers["Content-Type"].startswith("text/javascript")
    cached = requests.get(
        f"{base}/console/app.js", headers={"If-None-Match": again.headers["ETag"]}, timeout=10
    )
    assert cached.status_code == 304 and "no-cache" in cached.headers["Cache-Control"]
    assert requests.get(f"{base}/console/nope.js", timeout=10).status_code == 404
    assert requests.get(f"{base}/console/..%2fmain.py", timeout=10).status_code == 404


def test_an_unchanged_blocks_page_is_a_304_for_two_firestore_operations(clean):
    token = clean.issuer.session_token("user_alice")
    source = SourceAPI(clean.url("ingest"), token).create("Polled").json()
    dashboard = QueryAPI(clean.url("query"), token)
    assert dashboard.put_block("polled", count_block(source["id"])).status_code == 201
    url, auth = f"{clean.url('query')}/v1/blocks", dashboard.auth
    first = requests.get(url, headers=auth, timeout=10)
    assert first.status_code == 200 and first.headers["ETag"]
    polled = requests.get(
        url,
        headers={**auth, "If-None-Match": first.headers["ETag"], "X-Request-Id": "poll-1"},
        timeout=10,
    )
    assert polled.status_code == 304 and polled.content == b""
    assert request_log(clean, "query", "poll-1")["firestoreOps"] == 2
    other = QueryAPI(clean.url("query"), clean.issuer.session_token("user_bob"))
    theirs = requests.get(
        url, headers={**other.auth, "If-None-Match": first.headers["ETag"]}, timeout=10
    )
    assert theirs.status_code == 200 and theirs.json()["items"] == []  # another tenant's tag
    assert dashboard.delete_block("polled").status_code == 204
    changed = requests.get(
        url, headers={**auth, "If-None-Match": first.headers["ETag"]}, timeout=10
    )
    assert changed.status_code == 200 and changed.json()["items"] == []


def test_an_idle_open_page_polls_with_304s_only(console, clean, capsys):
    token = clean.issuer.session_token("user_alice")
    source = SourceAPI(clean.url("ingest"), token).create("Idle").json()
    assert QueryAPI(clean.url("query"), token).put_block("idle", count_block(source["id"])).ok
    page = console("user_alice")
    page.wait_for_selector("[data-block='idle'] .value")
    page.wait_for_timeout(2000)  # past the first poll and its 200
    log = clean.processes["query"].log_path
    before = len(log.read_text().splitlines())
    started = time.monotonic()
    page.wait_for_timeout(9000)
    idle_s = time.monotonic() - started
    lines = [json.loads(n) for n in log.read_text().splitlines()[before:] if n.startswith("{")]
    polls = [entry for entry in lines if entry.get("route") == "/v1/blocks"]
    assert polls and all(p["httpRequest"]["status"] == 304 for p in polls)
    reads = sum(p["firestoreOps"] for p in polls)
    with capsys.disabled():
        print(f"\n[console] idle page: {len(polls)} polls, {reads * 60 / idle_s:.0f} reads/minute")


def test_each_template_draws_its_widget(console, clean):
    token = clean.issuer.session_token("user_alice")
    source = SourceAPI(clean.url("ingest"), token).create("Checkout").json()
    for amount in (12, 30, 7):
        body = {"amount": amount, "currency": "EUR", "customer": {"country": "FR"}}
        assert partner.send(source["url"], source["secret"], body).status_code == 202
    dashboard = QueryAPI(clean.url("query"), token)
    series = {"window": "1h", "bucket": "5m", "field": "amount", "op": "sum"}
    for block_id, config, fields, template in (
        (
            "revenue",
            {
                "type": "webhook.aggregate",
                "params": {"window": "1h", "field": "amount", "op": "sum"},
            },
            {
                "value": {"source": "value", "format": "number"},
                "label": {"literal": "Revenue (1h)"},
            },
            "metric",
        ),
        (
            "revenue-5m",
            {"type": "webhook.series", "params": series},
            {"points": {"source": "$"}, "label": {"literal": "Revenue per 5 minutes"}},
            "chart",
        ),
        (
            "recent",
            {"type": "webhook.list", "params": {"limit": 5}},
            {"rows": {"source": "$"}},
            "table",
        ),
        ("newest", {"type": "webhook.latest"}, {"body": {"source": "$"}}, "json"),
    ):
        body = {
            "binding": {
                "dataSourceId": source["id"],
                "queryConfig": config,
                "projection": {"fields": fields},
            },
            "widget": {"template": template},
        }
        assert dashboard.put_block(block_id, body).status_code == 201, block_id
    page = console("user_alice")
    expect(page.locator("[data-block='revenue'] .value")).to_have_text("49")
    assert page.locator("[data-block='revenue-5m'] svg.chart polyline").count() == 1
    assert page.locator("[data-block='recent'] tbody tr").count() == 3
    assert "currency" in page.text_content("[data-block='newest'] .json")
    screenshot(page, "blocks-templates")
