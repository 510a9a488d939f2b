"""No value a partner can send makes a query or a refresh answer 5xx, and every aggregate equals
an oracle that shares no code with the query service (``tests/oracle.py``): hostile JSON goes
through ingest, is read directly, then folded into rollups, then queried over every window, op
and field path (docs/query.md "Which values count")."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests import oracle, partner
from tests.support import run_refresh

PATHS = {
    "v": ("v",),
    "$.n.x": ("n", "x"),
    "arr.0": ("arr", "0"),
    "$['a.b']": ("a.b",),
    "deep.0.0.0": ("deep", "0", "0", "0"),
}
WINDOWS, OPS = ("15m", "1h", "24h", "7d"), ("sum", "count", "avg")

digits = st.sampled_from("0123456789\u0663\u09ea\uff11")  # ASCII, Arabic-Indic, Bengali, fullwidth
number_text = st.one_of(
    st.from_regex(
        r"-?([0-9]{1,30}\.?[0-9]{0,30}|\.[0-9]{1,30})([eE][+-]?[0-9]{1,4})?", fullmatch=True
    ),
    st.builds(lambda n, e: f"{n}e{e}", st.integers(-9, 9), st.integers(-2000, 2000)),
    st.sampled_from(["1e308", "9" * 308, "9" * 307 + ".5", "1e-308", "1e-309", "0e99999", "-0"]),
    st.builds(lambda k: "9" * k, st.integers(300, 4300)),
    st.builds("".join, st.lists(digits, min_size=1, max_size=12)),
)
raw_scalar = st.one_of(
    number_text,  # written as a JSON number (when JSON allows it) ...
    number_text.map(json.dumps),  # ... or as a string
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8).map(json.dumps),
    st.sampled_from(
        ["true", "false", "null", '"NaN"', '"Infinity"', '"1e400"', '"12\\n"', "[]", "{}"]
    ),
)


def nested(depth: int, leaf: str) -> str:
    return "[" * depth + leaf + "]" * depth


raw_body = st.builds(
    lambda v, x, a, ab, deep, d: (
        f'{{"v": {v}, "n": {{"x": {x}}}, "arr": [{a}], "a.b": {ab}, '
        f'"deep": {nested(d, deep)}, "pad": {nested(60, "0") if d % 2 else "0"}}}'
    ),
    raw_scalar,
    raw_scalar,
    raw_scalar,
    raw_scalar,
    raw_scalar,
    st.integers(1, 3),
)


def expected(bodies: list[bytes], op: str, path: tuple[str, ...]) -> dict:
    values = []
    for raw in bodies:
        found = oracle.value(oracle.resolve(oracle.parse_body(raw), path))
        if found is not None:
            values.append(found)
    return oracle.fold(values, op)


def check_every_series(dashboard, source_id: str, stored: list[tuple[float, bytes]]) -> None:
    """Each point of a series equals the oracle's fold of the bodies received in its bucket."""
    for window, bucket, size in (("1h", "1m", 60), ("24h", "1h", 3600), ("7d", "1d", 86400)):
        for field, path in PATHS.items():
            for op in OPS:
                params = {"window": window, "bucket": bucket, "field": field, "op": op}
                answer = dashboard.query(source_id, {"type": "webhook.series", "params": params})
                assert answer.status_code == 200, (params, answer.text)
                for point in oracle.answer_value(answer.text)["result"]:
                    t = dt.datetime.fromisoformat(point["t"]).timestamp()
                    inside = [body for at, body in stored if t <= at < t + size]
                    want = expected(inside, op, path)
                    assert (point["value"], point["count"]) == (want["value"], want["count"])


def check_every_answer(dashboard, source_id: str, stored: list[bytes]) -> None:
    for window in WINDOWS:
        answer = dashboard.query(
            source_id, {"type": "webhook.aggregate", "params": {"window": window, "op": "count"}}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["value"] == len(stored)
        for field, path in PATHS.items():
            for op in OPS:
                params = {"window": window, "field": field, "op": op}
                answer = dashboard.query(source_id, {"type": "webhook.aggregate", "params": params})
                assert answer.status_code == 200, (params, answer.text)
                result = oracle.answer_value(answer.text)["result"]
                want = expected(stored, op, path)
                assert (result["value"], result["count"]) == (want["value"], want["count"]), params
    for config in (
        {"type": "webhook.latest"},
        *({"type": "webhook.list", "params": {"sortBy": f, "limit": 3}} for f in PATHS),
    ):
        assert dashboard.query(source_id, config).status_code == 200, config


@settings(
    max_examples=8,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(raw_body, min_size=1, max_size=4))
def test_hostile_values_never_make_a_5xx_and_every_aggregate_equals_the_oracle(
    clean, tenant, dashboard, db, batch
):
    source = tenant.create("Hostile").json()
    stored = []
    for text in batch:
        body = text.encode()
        sent = partner.send(source["url"], source["secret"], body=body)
        assert sent.status_code in (202, 400), sent.text  # 400: not strict JSON (1e400)
        if sent.status_code == 202:
            stored.append(body)
    check_every_answer(dashboard, source["id"], stored)  # read directly
    events = db.collection("sources").document(source["id"]).collection("events")
    check_every_series(dashboard, source["id"], received(events))
    for doc in events.stream():  # settled, so the refresh folds them
        doc.reference.update({"receivedAt": doc.get("receivedAt") - dt.timedelta(minutes=2)})
    answer = run_refresh(clean, source["id"])
    assert answer.status_code == 200, answer.text
    check_every_answer(dashboard, source["id"], stored)  # through the rollups
    check_every_series(dashboard, source["id"], received(events))


def received(events) -> list[tuple[float, bytes]]:
    return [(doc.get("receivedAt").timestamp(), doc.get("body")) for doc in events.stream()]
