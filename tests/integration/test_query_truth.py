"""Query truth: hostile values cannot wedge a source, sums are exact, answers come from one
moment, late commits are folded, blocks stay true (docs/query.md "Which values count", "Rollups",
"The refresh task"). Against the emulators, through HTTP where a person would go."""

from __future__ import annotations

import datetime as dt
import json
import secrets

from services.common import context
from services.query import catalog, queries, refresh, rollup_store
from tests import oracle, partner
from tests.partner import count_block
from tests.support import (
    refreshes,
    rollup_buckets,
    rollup_state,
    run_refresh,
    store_events,
    sweep,
    wait_for,
)

WINDOWS = tuple(catalog.WINDOWS)


def aggregate(dashboard, source_id, op, field=None, window="1h"):
    params = {"window": window, "op": op, **({"field": field} if field else {})}
    answer = dashboard.query(source_id, {"type": "webhook.aggregate", "params": params})
    assert answer.status_code == 200, answer.text
    return oracle.answer_value(answer.text)["result"]


def sum_block(source_id: str, field: str, window: str = "1h") -> dict:
    params = {"window": window, "field": field, "op": "sum"}
    return {
        "binding": {
            "dataSourceId": source_id,
            "queryConfig": {"type": "webhook.aggregate", "params": params},
            "projection": {"fields": {"value": {"source": "value"}}},
        },
        "widget": {"template": "metric"},
    }


def settle(clean, db, source_id: str, by: dt.timedelta = dt.timedelta(minutes=2)) -> None:
    """Age the source's events past the settle interval and fold them (a refresh)."""
    events = db.collection("sources").document(source_id).collection("events")
    batch = db.batch()
    for doc in events.stream():
        batch.update(doc.reference, {"receivedAt": doc.get("receivedAt") - by})
    batch.commit()
    answer = run_refresh(clean, source_id)
    assert answer.status_code == 200, answer.text


def test_a_4300_digit_amount_cannot_wedge_a_source(clean, dashboard, source, db):
    huge = "9" * 4300  # the longest integer Python parses by default
    for amount in ("2", huge, "-" + huge, '"0.5"', f'"{huge}"'):
        body = f'{{"amount": {amount}}}'.encode()
        sent = partner.send(source["url"], source["secret"], body=body)
        assert sent.status_code == 202, sent.text
    assert dashboard.put_block("amount", sum_block(source["id"], "amount")).status_code == 201
    for _ in range(2):  # once unfolded (read directly), once folded into the rollups
        for window in WINDOWS:
            result = aggregate(dashboard, source["id"], "sum", "amount", window)
            assert result["value"] == 2.5 and result["count"] == 2
        settle(clean, db, source["id"])
    assert dashboard.get_block("amount").json()["widget"]["data"]["value"] == 2.5
    assert run_refresh(clean, source["id"]).status_code == 200


def test_values_count_by_the_readme_rules_and_sums_are_exact(clean, dashboard, source, db):
    bodies = [
        b'{"v": "\\u0663"}',  # an Arabic-Indic three: not an ASCII digit
        b'{"v": "12345678901234567890123"}',  # exact, not through a double
        b'{"v": "1e400"}',  # beyond 1e308: skipped like NaN
        b'{"v": 0.1}',
        b'{"v": "0.2"}',
        b'{"v": true}',
        b'{"v": 1e-400}',  # below 1e-308
    ]
    for body in bodies:
        sent = partner.send(source["url"], source["secret"], body=body)
        assert sent.status_code == 202, sent.text
    expected = 12345678901234567890123 + oracle.Fraction(13, 10)
    for _ in range(2):
        result = aggregate(dashboard, source["id"], "sum", "v")
        assert result["count"] == 4
        assert result["value"] == oracle.render(expected)
        assert aggregate(dashboard, source["id"], "count")["value"] == len(bodies)
        settle(clean, db, source["id"])


def test_an_integral_sum_beyond_a_double_is_exact_and_a_fraction_beyond_has_17_digits(
    clean, dashboard, source, db
):
    just_below = "9" * 308  # 1e308 - 1: the largest integer that counts
    for fraction in (".5", ".5", ".25"):
        body = f'{{"i": {just_below}, "f": "{just_below}{fraction}"}}'.encode()
        assert partner.send(source["url"], source["secret"], body=body).status_code == 202
    for _ in range(2):
        exact = dashboard.query(
            source["id"],
            {"type": "webhook.aggregate", "params": {"window": "1h", "field": "i", "op": "sum"}},
        )
        assert exact.status_code == 200
        assert f'"value":{3 * int(just_below)},' in exact.text  # 309 digits, exactly
        beyond = aggregate(dashboard, source["id"], "sum", "f")
        assert str(beyond["value"]) == "3.0000000000000000E+308"  # written 3.0000000000000000e+308
        assert aggregate(dashboard, source["id"], "avg", "f")["value"] == 1e308
        settle(clean, db, source["id"])


def test_a_fold_committed_between_an_aggregates_reads_is_counted_once(clean, db, monkeypatch):
    source_id = "src_" + secrets.token_hex(10)
    now = dt.datetime.now(dt.UTC)
    store_events(db, source_id, [(now - dt.timedelta(minutes=5), {"v": 1}) for _ in range(10)])
    while rollup_store.fold_once(source_id, now)[0]:
        pass
    store_events(db, source_id, [(now - dt.timedelta(minutes=4), {"v": 1}) for _ in range(5)])
    read_window = rollup_store.read_window

    def fold_first(*args, **kw):
        # The state (cursor after the first ten) is read; a refresh folds the other five and
        # commits; then the buckets and the events after the cursor are read.
        while rollup_store.fold_once(source_id, now)[0]:
            pass
        return read_window(*args, **kw)

    monkeypatch.setattr(rollup_store, "read_window", fold_first)
    for field in (None, ("v",)):
        query = catalog.Aggregate(window="1h", op="sum" if field else "count", field=field)
        assert queries.aggregate(source_id, query, now)["value"] == 15
    assert rollup_state(db, source_id)["retained"] == 15


def test_a_commit_landing_late_behind_the_fold_is_still_folded(clean, db):
    source_id = "src_" + secrets.token_hex(10)
    now = dt.datetime.now(dt.UTC)
    store_events(db, source_id, [(now - dt.timedelta(seconds=s), {"v": 1}) for s in (30, 12)])
    while rollup_store.fold_once(source_id, now)[0]:
        pass
    # Stamped by an ingest instance the storage budget plus the clock skew ago, committed now:
    # behind the event stamped 12 s ago, which a fold must therefore not have passed.
    late = dt.timedelta(seconds=store_budget_s()) + rollup_store.MAX_CLOCK_SKEW
    store_events(db, source_id, [(now - late, {"v": 1})])
    later = now + dt.timedelta(minutes=1)
    while rollup_store.fold_once(source_id, later)[0]:
        pass
    assert rollup_state(db, source_id)["retained"] == 3
    query = catalog.Aggregate(window="1h", op="count", field=None)
    assert queries.aggregate(source_id, query, later)["value"] == 3
    while rollup_store.trim_once(source_id, 1)[0]:
        pass
    assert queries.aggregate(source_id, query, later)["value"] == 1
    assert rollup_state(db, source_id)["retained"] == 1


def store_budget_s() -> float:
    from services.common import store

    return store.REQUEST_STORAGE_BUDGET_S


def test_rollups_written_under_older_rules_are_rebuilt_by_the_next_refresh(
    clean, dashboard, source, db
):
    now = dt.datetime.now(dt.UTC)
    store_events(db, source["id"], [(now - dt.timedelta(minutes=5), {"v": "\u0663"})] * 3)
    source_ref = db.collection("sources").document(source["id"])
    # What an older Inlet stored: buckets keyed by field, "٣" counted as 3, no rules version.
    key = "8d6b7fdc8bc7b44b3fa6"
    minute = int(now.timestamp()) // 60 * 60 - 300
    source_ref.collection("rollup_state").document("state").set(
        {
            "fields": {
                "_all": {"path": None, "cursor": {"at": now, "id": "evt_~"}},
                key: {"path": ["v"], "cursor": {"at": now, "id": "evt_~"}},
            },
            "retained": 3,
        }
    )
    for granularity, start in (
        ("m", minute),
        ("h", minute // 3600 * 3600),
        ("d", minute // 86400 * 86400),
    ):
        source_ref.collection("rollups").document(f"{key}-{granularity}-{start}").set(
            {"f": key, "g": granularity, "t": start, "s": "9", "c": 3}
        )
    assert aggregate(dashboard, source["id"], "sum", "v")["count"] == 0  # old buckets unread
    assert run_refresh(clean, source["id"]).status_code == 200
    state = rollup_state(db, source["id"])
    assert state["rules"] == rollup_store.RULES and state["retained"] == 3
    assert state["orphans"] == []
    assert [f["path"] for f in state["fields"].values()] in ([None, ["v"]], [["v"], None])
    (v_field,) = [f for f in state["fields"].values() if f["path"] == ["v"]]
    assert v_field["cursor"] is not None and v_field["tag"] != key  # refolded under new buckets
    assert run_refresh(clean, source["id"]).status_code == 200  # and kept by the next refresh
    assert ["v"] in [f["path"] for f in rollup_state(db, source["id"])["fields"].values()]
    left = [b.id for b in source_ref.collection("rollups").stream()]
    assert not [b for b in left if b.startswith(key)]
    assert aggregate(dashboard, source["id"], "sum", "v") == {
        "value": 0,
        "count": 0,
        "window": "1h",
        "op": "sum",
    }
    assert aggregate(dashboard, source["id"], "count")["value"] == 3


def test_a_source_rolls_up_32_fields_and_the_33rd_is_a_422_naming_it(clean, dashboard, source):
    for n in range(rollup_store.MAX_FIELDS):
        assert aggregate(dashboard, source["id"], "sum", f"f{n}")["count"] == 0
    answer = dashboard.query(
        source["id"],
        {"type": "webhook.aggregate", "params": {"window": "1h", "field": "extra", "op": "sum"}},
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "too_many_fields"
    assert '$["extra"]' in answer.json()["error"]["message"]
    assert aggregate(dashboard, source["id"], "sum", "f0")["count"] == 0  # registered ones work


def test_a_field_no_query_asked_for_in_7_days_is_retired_with_its_buckets(
    clean, dashboard, source, db
):
    now = dt.datetime.now(dt.UTC)
    store_events(db, source["id"], [(now - dt.timedelta(minutes=5), {"v": 2, "w": 3})])
    aggregate(dashboard, source["id"], "sum", "v")
    aggregate(dashboard, source["id"], "sum", "w")
    assert run_refresh(clean, source["id"]).status_code == 200
    state = rollup_state(db, source["id"])
    (v_key,) = [k for k, f in state["fields"].items() if f["path"] == ["v"]]
    (w_key,) = [k for k, f in state["fields"].items() if f["path"] == ["w"]]
    w_tag = state["fields"][w_key]["tag"]
    assert rollup_buckets(db, source["id"], w_key)
    state_ref = db.collection("sources").document(source["id"]).collection("rollup_state")
    state["fields"][w_key]["queriedAt"] = now - dt.timedelta(days=8)
    state_ref.document("state").set(state)
    assert run_refresh(clean, source["id"]).status_code == 200
    kept = rollup_state(db, source["id"])["fields"]
    assert v_key in kept and w_key not in kept
    rollups = db.collection("sources").document(source["id"]).collection("rollups")
    assert not [b for b in rollups.stream() if b.get("f") == w_tag]
    # Asked again, it is registered afresh and exact.
    assert aggregate(dashboard, source["id"], "sum", "w")["value"] == 3


def test_one_failing_block_is_its_own_error_and_the_others_refresh(clean, dashboard, source, db):
    assert dashboard.put_block("good", count_block(source["id"])).status_code == 201
    assert dashboard.put_block("bad", count_block(source["id"])).status_code == 201
    (bad,) = [b for b in db.collection("blocks").stream() if b.get("id") == "bad"]
    binding = json.loads(bad.get("binding"))
    binding["queryConfig"]["params"]["window"] = "1y"  # unreadable by this version of Inlet
    bad.reference.update({"binding": json.dumps(binding)})
    partner.send(source["url"], source["secret"], {"amount": 1})
    assert run_refresh(clean, source["id"]).status_code == 200
    assert dashboard.get_block("good").json()["widget"]["data"]["value"] == 1
    failed = dashboard.get_block("bad").json()
    assert failed["status"] == "error" and "window" in failed["message"]


def test_a_block_rebound_to_another_source_mid_refresh_is_left_to_that_source(
    clean, dashboard, tenant, source, db
):
    other = tenant.create("Other").json()
    assert dashboard.put_block("moving", count_block(source["id"])).status_code == 201
    (snap,) = [b for b in db.collection("blocks").stream() if b.get("id") == "moving"]
    # The refresh of the first source read the block; then the owner rebinds it.
    assert dashboard.put_block("moving", count_block(other["id"])).status_code == 200
    partner.send(source["url"], source["secret"], {"amount": 1})
    results = refresh.blocks.Results(source["id"], dt.datetime.now(dt.UTC))
    for deleted in (False, True):
        assert refresh._refresh_one(snap, source["id"], results, results.now, deleted) is None
    block = dashboard.get_block("moving").json()
    assert block["status"] == "ok" and block["widget"]["data"]["value"] == 0
    assert block["binding"]["dataSourceId"] == other["id"]


def test_deleting_a_block_is_204_and_another_tenants_block_is_a_404(clean, dashboard, source):
    from tests.partner import QueryAPI

    assert dashboard.put_block("gone", count_block(source["id"])).status_code == 201
    stranger = QueryAPI(dashboard.base, clean.issuer.session_token("user_mallory"))
    assert stranger.delete_block("gone").status_code == 404
    assert dashboard.get_block("gone").status_code == 200
    assert dashboard.delete_block("gone").status_code == 204
    assert dashboard.get_block("gone").status_code == 404
    assert dashboard.delete_block("gone").status_code == 404
    assert dashboard.list_blocks().json()["items"] == []


def test_a_windowed_block_on_a_quiet_source_gets_a_follow_up_on_the_minute(
    clean, dashboard, source, db
):
    now = dt.datetime.now(dt.UTC)
    store_events(db, source["id"], [(now - dt.timedelta(minutes=30), {"v": 1})])
    assert dashboard.put_block("quiet", count_block(source["id"], "1h")).status_code == 201

    def followups():
        markers = db.collection("refresh_pending").stream()
        return [
            m.to_dict()
            for m in markers
            if m.get("sourceId") == source["id"] and m.get("dueAt") is not None
        ]

    # The block write's refresh (through the outbox) schedules when the event leaves the window.
    due = wait_for(followups, 20)
    assert due, "no follow-up was recorded"
    at = due[0]["dueAt"]
    assert at.second == 0 and at.microsecond == 0
    assert at > now + dt.timedelta(minutes=29)


def test_a_follow_up_whose_enqueue_fails_is_recorded_and_the_sweep_enqueues_it(
    clean, source, db, monkeypatch
):
    from services.common import outbox, tasks
    from services.common.config import Env, TaskSettings
    from tests.integration.test_outbox_faults import dead_address

    down = Env({**clean.service_env(), "TASKS_EMULATOR_HOST": dead_address()})
    monkeypatch.setattr(tasks, "_client", tasks._new_client(TaskSettings.from_env(down)))
    due = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=3)
    outbox.schedule_followup(TaskSettings.from_env(down), source["id"], due)
    (marker,) = [
        m for m in db.collection("refresh_pending").stream() if m.get("sourceId") == source["id"]
    ]
    assert marker.get("enqueuedAt") is None and marker.get("dueAt") == due
    marker.reference.update({"createdAt": marker.get("createdAt") - dt.timedelta(minutes=2)})
    assert sweep(clean)["reenqueued"] == 1
    served = wait_for(lambda: refreshes(clean, source["id"], "followup"), 30)
    assert served, "the re-enqueued follow-up never ran"
    assert wait_for(lambda: not marker.reference.get().exists)  # served: completed


def test_statistics_are_written_when_they_change_and_at_most_once_a_minute(clean, source, db):
    ref = db.collection("sources").document(source["id"])
    partner.send(source["url"], source["secret"], {"n": 1}, key="first")
    assert run_refresh(clean, source["id"]).status_code == 200
    first = ref.get()
    assert first.get("eventCount") == 1
    assert run_refresh(clean, source["id"]).status_code == 200  # nothing changed: no write
    assert ref.get().update_time == first.update_time
    partner.send(source["url"], source["secret"], {"n": 2}, key="second")
    held = run_refresh(clean, source["id"]).json()
    assert ref.get().get("eventCount") == 1  # changed, but written under a minute ago
    assert held["followupAt"] is not None  # the owed write has its follow-up
    ref.update({"statisticsAt": first.get("statisticsAt") - dt.timedelta(minutes=2)})
    assert run_refresh(clean, source["id"]).status_code == 200
    assert ref.get().get("eventCount") == 2


def test_a_fold_landing_after_the_purge_removed_the_state_writes_nothing(clean, db):
    from services.common import source_store, store

    source_id = "src_" + secrets.token_hex(10)
    now = dt.datetime.now(dt.UTC)
    db.collection("sources").document(source_id).set({"deleted": True, "purgedAt": None})
    store_events(db, source_id, [(now - dt.timedelta(minutes=5), {"v": 1})] * 3)
    rollup_store.fold_once(source_id, now)
    store_events(db, source_id, [(now - dt.timedelta(minutes=4), {"v": 1})])
    state = rollup_store.State.read(source_id)  # a refresh read the state, then the purge ran
    source_store.purge(source_id)
    changes = {("_all", "m", 0): rollup_store.rollups.Totals(rollup_store.coercion.decode("0"), 1)}
    assert rollup_store._commit(source_id, state, changes, lambda batch: None) is False
    rollups = db.collection("sources").document(source_id).collection("rollups")
    assert list(rollups.stream()) == []
    assert dt.timedelta(seconds=store.TASK_STORAGE_BUDGET_S) < source_store.PURGE_AFTER


def test_a_fold_reads_bodies_only_for_fields_and_bounds_each_chunk_by_stored_size(
    clean, db, monkeypatch
):
    source_id = "src_" + secrets.token_hex(10)
    now = dt.datetime.now(dt.UTC)
    padding = "x" * 600
    store_events(db, source_id, [(now - dt.timedelta(minutes=5), {"v": 1, "p": padding})] * 4)
    monkeypatch.setattr(rollup_store, "CHUNK_BYTES", 1000)  # one 600-byte body per chunk
    got_bodies = []
    original = rollup_store._bodies
    monkeypatch.setattr(
        rollup_store, "_bodies", lambda refs: got_bodies.append(len(refs)) or original(refs)
    )
    while rollup_store.fold_once(source_id, now)[0]:
        pass
    assert got_bodies == []  # the all-events count needs no body
    assert rollup_state(db, source_id)["retained"] == 4
    rollup_store.register(source_id, ("v",), now)
    while rollup_store.fold_once(source_id, now)[0]:
        pass
    assert got_bodies == [1, 1, 1, 1]
    query = catalog.Aggregate(window="1h", op="sum", field=("v",))
    assert queries.aggregate(source_id, query, now)["value"] == 4


def test_an_aggregate_reads_a_bounded_number_of_events_then_asks_for_a_retry(
    clean, dashboard, source, db, monkeypatch
):
    now = dt.datetime.now(dt.UTC)
    store_events(db, source["id"], [(now - dt.timedelta(minutes=5), {"v": 1})] * 6)
    monkeypatch.setattr(queries, "MAX_SCAN", 5)
    query = catalog.Aggregate(window="1h", op="sum", field=("v",))
    try:
        queries.aggregate(source["id"], query, now)
    except queries.StorageUnavailable as err:
        assert err.code == "rollup_catching_up" and err.headers["Retry-After"] == "10"
    else:
        raise AssertionError("read more than MAX_SCAN events")
    while rollup_store.fold_once(source["id"], now)[0]:
        pass
    assert queries.aggregate(source["id"], query, now)["value"] == 6  # folded: no scan


def test_a_count_has_firestore_count_the_events_not_folded_and_reads_none(
    clean, dashboard, source, db, monkeypatch
):
    now = dt.datetime.now(dt.UTC)
    old = [(now - dt.timedelta(minutes=30), {"v": 1})] * 4
    recent = [(now - dt.timedelta(seconds=5), {"v": 1})] * 30  # not settled: never folded yet
    store_events(db, source["id"], old + recent)
    while rollup_store.fold_once(source["id"], now)[0]:
        pass
    monkeypatch.setattr(queries, "MAX_SCAN", 5)  # would refuse a scan of the 30
    query = catalog.Aggregate(window="1h", op="count", field=None)
    ctx = context.RequestContext(request_id="count")
    token = context.activate(ctx)
    try:
        answer = queries.aggregate(source["id"], query, now)
    finally:
        context.deactivate(token)
    assert answer["value"] == 34
    # The source, the rollup state, the buckets: no event document.
    assert ctx.firestore_reads <= 3
