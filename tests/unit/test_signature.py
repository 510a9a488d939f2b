"""The inbound wire format: signature headers, the time window and HMAC checks (docs/ingest.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook
from werkzeug.datastructures import Headers

from services.common.errors import BadRequest, Unauthorized
from services.ingest.signature import (
    MAX_AGE_S,
    MAX_FUTURE_S,
    MAX_SIGNATURES,
    InvalidSignatureHeader,
    SignedRequest,
    check_timestamp,
    inlet_signature,
    matching_key,
    parse_headers,
)

NOW = 1_700_000_000
BODY = b'{"order":42,"total":"9.99"}'


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def partner_signature(secret: str, t: int, body: bytes) -> str:
    """What a partner writes from the README's description, independently of the service."""
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def inlet_headers(value: str, key: str = "evt_1") -> dict[str, str]:
    # A plain mapping: werkzeug's Headers would refuse some of the hostile values below.
    return {"Inlet-Signature": value, "Idempotency-Key": key}


def hex_sig(fill: str = "a") -> str:
    return fill * 64


def standard_headers(secret: str, body: bytes, msg_id: str = "msg_1", t: int | None = None):
    t = int(datetime.now(UTC).timestamp()) if t is None else t
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(t, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(t), "webhook-signature": signature}


# --- Inlet-Signature parsing ---------------------------------------------------------------------


def test_inlet_header_yields_timestamp_key_and_signature():
    signed = parse_headers(inlet_headers(f"t={NOW},v1={hex_sig()}", key="order-42"))

    assert signed == SignedRequest("inlet", NOW, "order-42", (hex_sig(),), {})


def test_several_v1_entries_are_all_kept_in_order():
    value = f"t={NOW},v1={hex_sig('a')},v1={hex_sig('b')},v1={hex_sig('c')}"

    assert parse_headers(inlet_headers(value)).signatures == (
        hex_sig("a"),
        hex_sig("b"),
        hex_sig("c"),
    )


def test_upper_case_hex_signatures_are_normalised_to_lower_case():
    signed = parse_headers(inlet_headers(f"t={NOW},v1={'AB' * 32}"))

    assert signed.signatures == ("ab" * 32,)


def test_spaces_around_entries_are_tolerated():
    signed = parse_headers(inlet_headers(f" t={NOW} , v1={hex_sig()} "))

    assert (signed.timestamp, signed.signatures) == (NOW, (hex_sig(),))


def test_unknown_schemes_are_ignored_so_senders_can_add_them_later():
    value = f"v0=whatever,t={NOW},v2=not-hex-at-all,v1={hex_sig()},x=1"

    assert parse_headers(inlet_headers(value)).signatures == (hex_sig(),)


def test_header_name_lookup_is_case_insensitive_with_request_headers():
    headers = Headers({"inlet-signature": f"t={NOW},v1={hex_sig()}", "idempotency-key": "k"})

    assert parse_headers(headers).idempotency_key == "k"


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"t={NOW}",
        f"v1={hex_sig()}",
        f"t={NOW},v1=",
        f"t=,v1={hex_sig()}",
        f"t=-5,v1={hex_sig()}",
        f"t=12.5,v1={hex_sig()}",
        f"t=1e9,v1={hex_sig()}",
        f"t=0x10,v1={hex_sig()}",
        f"t=1234567890123,v1={hex_sig()}",
        f"t={NOW},v1={'a' * 63}",
        f"t={NOW},v1={'a' * 65}",
        f"t={NOW},v1={'g' * 64}",
        f"t={NOW},v1={base64.b64encode(b'x' * 32).decode()}",
        f"t={NOW};v1={hex_sig()}",
        f"t={NOW},v1={hex_sig()},garbage",
        f"t={NOW},,v1={hex_sig()}",
        f"t = {NOW},v1={hex_sig()}",
        f"t=١٢٣,v1={hex_sig()}",
    ],
)
def test_malformed_inlet_signature_is_a_bad_request(value):
    with pytest.raises(InvalidSignatureHeader) as raised:
        parse_headers(inlet_headers(value))

    assert raised.value.status == 400
    assert raised.value.code == "invalid_signature_header"


def test_up_to_the_signature_limit_is_accepted():
    value = f"t={NOW}," + ",".join(f"v1={hex_sig()}" for _ in range(MAX_SIGNATURES))

    assert len(parse_headers(inlet_headers(value)).signatures) == MAX_SIGNATURES


def test_too_many_signatures_are_refused():
    value = f"t={NOW}," + ",".join(f"v1={hex_sig()}" for _ in range(MAX_SIGNATURES + 1))

    with pytest.raises(InvalidSignatureHeader):
        parse_headers(inlet_headers(value))


@pytest.mark.parametrize("second", [str(NOW), str(NOW + 1)])
def test_a_duplicate_timestamp_is_refused_even_when_equal(second):
    with pytest.raises(InvalidSignatureHeader):
        parse_headers(inlet_headers(f"t={NOW},v1={hex_sig()},t={second}"))


# --- Idempotency-Key -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["a", "k" * 255, " ", "~", 'order 42/line:7?x=1&y="2"', "".join(map(chr, range(0x20, 0x7F)))],
)
def test_idempotency_key_of_1_to_255_printable_ascii_is_accepted(key):
    assert parse_headers(inlet_headers(f"t={NOW},v1={hex_sig()}", key=key)).idempotency_key == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "k" * 256,
        "tab\there",
        "new\nline",
        "trailing-newline\n",
        "\nleading-newline",
        "nul\x00",
        "del\x7f",
        "escape\x1b[0m",
        "caf\u00e9",
        "caf\xe9",  # how a latin-1 byte arrives through WSGI
        "emoji-\U0001f600",
    ],
)
def test_idempotency_key_that_is_empty_too_long_or_not_printable_ascii_is_refused(key):
    with pytest.raises(BadRequest) as raised:
        parse_headers(inlet_headers(f"t={NOW},v1={hex_sig()}", key=key))

    assert raised.value.code == "invalid_idempotency_key"


def test_missing_idempotency_key_is_refused():
    with pytest.raises(BadRequest) as raised:
        parse_headers(Headers({"Inlet-Signature": f"t={NOW},v1={hex_sig()}"}))

    assert raised.value.code == "invalid_idempotency_key"


def test_signature_header_is_checked_before_the_idempotency_key():
    with pytest.raises(InvalidSignatureHeader):
        parse_headers(inlet_headers("t=nonsense", key=""))


# --- Standard Webhooks headers -------------------------------------------------------------------


def test_standard_webhooks_headers_use_webhook_id_as_the_idempotency_key():
    entry = "v1," + "A" * 43 + "="
    headers = Headers(
        {"webhook-id": "msg_2x", "webhook-timestamp": str(NOW), "webhook-signature": entry}
    )

    signed = parse_headers(headers)

    assert signed.scheme == "standard"
    assert signed.timestamp == NOW
    assert signed.idempotency_key == "msg_2x"
    assert signed.signatures == ()
    assert dict(signed.headers) == {
        "webhook-id": "msg_2x",
        "webhook-timestamp": str(NOW),
        "webhook-signature": entry,
    }


def test_inlet_signature_wins_when_both_schemes_are_present():
    headers = inlet_headers(f"t={NOW},v1={hex_sig()}")
    headers.update({"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1,x"})

    assert parse_headers(headers).scheme == "inlet"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_incomplete_standard_webhooks_headers_are_a_missing_signature(missing):
    headers = Headers({"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "s"})
    del headers[missing]

    with pytest.raises(InvalidSignatureHeader):
        parse_headers(headers)


def test_no_signature_headers_at_all_is_a_bad_request():
    with pytest.raises(InvalidSignatureHeader):
        parse_headers(Headers({"Idempotency-Key": "k", "Content-Type": "application/json"}))


@pytest.mark.parametrize("timestamp", ["-1", "1.5", "1e9", "soon", "1234567890123", f"{NOW}\n"])
def test_standard_webhooks_timestamp_must_be_unix_seconds(timestamp):
    headers = {"webhook-id": "m", "webhook-timestamp": timestamp, "webhook-signature": "v1,x"}

    with pytest.raises(InvalidSignatureHeader):
        parse_headers(headers)


@pytest.mark.parametrize("msg_id", ["k" * 256, "bad\x01id", "msg\n", "caf\u00e9"])
def test_standard_webhooks_id_follows_the_idempotency_key_rules(msg_id):
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(NOW), "webhook-signature": "v1,x"}

    with pytest.raises(BadRequest) as raised:
        parse_headers(headers)

    assert raised.value.code == "invalid_idempotency_key"


_HEADER_NAMES = st.sampled_from(
    [
        "Inlet-Signature",
        "Idempotency-Key",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "Stripe-Signature",
        "X-Hub-Signature-256",
        "X-GitHub-Delivery",
    ]
)
# Header values as WSGI hands them over: latin-1 text, occasionally shaped like the real thing.
_HEADER_TEXT = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=300),
    st.lists(
        st.tuples(
            st.sampled_from(["t", "v1", "v0", "", " t", "v1 ", "sha256", "v1a,"]),
            st.sampled_from(["=", "", "=="]),
            st.one_of(
                st.text(max_size=70),
                st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64),
            ),
        ),
        max_size=12,
    ).map(lambda parts: ",".join("".join(p) for p in parts)),
)


@settings(deadline=None)
@given(st.dictionaries(_HEADER_NAMES, _HEADER_TEXT))
def test_parse_headers_only_ever_raises_bad_request_for_arbitrary_header_text(values):
    try:
        signed = parse_headers(values)
    except BadRequest:
        return
    assert signed.scheme in ("inlet", "standard", "github", "stripe")
    if signed.scheme == "stripe":
        assert signed.idempotency_key is None  # read from the body after step 7
    else:
        assert 1 <= len(signed.idempotency_key) <= 255


# --- The time window -----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-MAX_AGE_S, -1, 0, 1, MAX_FUTURE_S])
def test_timestamps_within_five_minutes_old_and_sixty_seconds_ahead_are_accepted(offset):
    assert MAX_AGE_S == 300 and MAX_FUTURE_S == 60
    check_timestamp(NOW + offset, now=NOW)


@pytest.mark.parametrize("offset", [-301, 61, -NOW, 10**9])
def test_timestamps_older_than_five_minutes_or_over_sixty_seconds_ahead_are_unauthorized(offset):
    with pytest.raises(Unauthorized) as raised:
        check_timestamp(NOW + offset, now=NOW)

    assert raised.value.status == 401


def test_age_limit_counts_fractions_of_a_second():
    check_timestamp(NOW - 300, now=NOW + 0.0)
    with pytest.raises(Unauthorized):
        check_timestamp(NOW - 300, now=NOW + 0.5)


# --- Inlet HMAC ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [BODY, b"", b"[]", '{"name":"Zo\u00eb"}'.encode(), b"\xff\xfe not utf-8"]
)
def test_inlet_signature_matches_what_a_partner_computes(body):
    secret = new_secret()

    assert inlet_signature(secret, NOW, body) == partner_signature(secret, NOW, body)


def test_inlet_signature_uses_the_whole_secret_string_as_the_key():
    secret = new_secret()
    decoded_key = base64.b64decode(secret.removeprefix("whsec_"))

    assert (
        inlet_signature(secret, NOW, BODY)
        != hmac.new(decoded_key, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    )


def signed_inlet(secrets_: list[str], t: int = NOW, body: bytes = BODY) -> SignedRequest:
    value = f"t={t}," + ",".join(f"v1={partner_signature(s, t, body)}" for s in secrets_)
    return parse_headers(inlet_headers(value))


def test_matching_key_names_the_first_key_when_it_matches():
    old, new = new_secret(), new_secret()

    assert matching_key(signed_inlet([old]), BODY, [("k_old", old), ("k_new", new)]) == "k_old"


def test_matching_key_names_the_second_key_when_only_it_matches():
    old, new = new_secret(), new_secret()

    assert matching_key(signed_inlet([new]), BODY, [("k_old", old), ("k_new", new)]) == "k_new"


def test_matching_key_is_none_when_no_key_matches():
    signed = signed_inlet([new_secret()])

    assert matching_key(signed, BODY, [("k1", new_secret()), ("k2", new_secret())]) is None


def test_matching_key_is_none_without_keys():
    assert matching_key(signed_inlet([new_secret()]), BODY, []) is None


def test_any_one_of_several_v1_signatures_may_match():
    secret = new_secret()
    signed = signed_inlet([new_secret(), secret, new_secret()])

    assert matching_key(signed, BODY, [("k1", secret)]) == "k1"


def test_upper_case_hex_from_a_partner_still_matches():
    secret = new_secret()
    value = f"t={NOW},v1={partner_signature(secret, NOW, BODY).upper()}"

    assert matching_key(parse_headers(inlet_headers(value)), BODY, [("k1", secret)]) == "k1"


def test_a_changed_body_does_not_match():
    secret = new_secret()

    assert matching_key(signed_inlet([secret]), BODY + b" ", [("k1", secret)]) is None


def test_a_changed_timestamp_does_not_match():
    secret = new_secret()
    value = f"t={NOW + 1},v1={partner_signature(secret, NOW, BODY)}"

    assert matching_key(parse_headers(inlet_headers(value)), BODY, [("k1", secret)]) is None


# --- Standard Webhooks HMAC ----------------------------------------------------------------------


def test_standard_webhooks_signature_from_the_library_matches():
    secret = new_secret()
    signed = parse_headers(standard_headers(secret, BODY))

    assert matching_key(signed, BODY, [("k1", secret)]) == "k1"


def test_standard_webhooks_matching_key_names_the_first_of_two_keys():
    old, new = new_secret(), new_secret()
    signed = parse_headers(standard_headers(old, BODY))

    assert matching_key(signed, BODY, [("k_old", old), ("k_new", new)]) == "k_old"


def test_standard_webhooks_matching_key_names_the_second_of_two_keys():
    old, new = new_secret(), new_secret()
    signed = parse_headers(standard_headers(new, BODY))

    assert matching_key(signed, BODY, [("k_old", old), ("k_new", new)]) == "k_new"


def test_standard_webhooks_signature_under_another_secret_does_not_match():
    signed = parse_headers(standard_headers(new_secret(), BODY))

    assert matching_key(signed, BODY, [("k1", new_secret()), ("k2", new_secret())]) is None


def test_standard_webhooks_signature_over_another_body_does_not_match():
    secret = new_secret()
    signed = parse_headers(standard_headers(secret, BODY))

    assert matching_key(signed, b'{"order":43}', [("k1", secret)]) is None


def test_standard_webhooks_signature_list_may_hold_other_versions_and_several_entries():
    secret = new_secret()
    headers = standard_headers(secret, BODY)
    good = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1a,abc v1,{base64.b64encode(b'x' * 32).decode()} {good}"

    assert matching_key(parse_headers(headers), BODY, [("k1", secret)]) == "k1"


@pytest.mark.parametrize(
    "signature",
    [
        "v1,not base64!!",
        "v1,abc",  # bad padding
        "v1",  # no comma
        "v1abc",
        "v1,a,b",  # too many commas
        ",",
        " ",
        "v1,\u00e9\u00e9\u00e9\u00e9",
    ],
)
def test_a_standard_webhooks_signature_with_no_well_formed_entry_is_a_malformed_header(signature):
    secret = new_secret()
    headers = standard_headers(secret, BODY)
    headers["webhook-signature"] = signature

    with pytest.raises(InvalidSignatureHeader):
        parse_headers(headers)


def test_a_malformed_entry_before_a_valid_one_does_not_hide_it():
    secret = new_secret()
    headers = standard_headers(secret, BODY)
    headers["webhook-signature"] = "garbage v1,abc " + headers["webhook-signature"]

    assert matching_key(parse_headers(headers), BODY, [("k1", secret)]) == "k1"


def test_a_timestamp_with_leading_zeros_is_a_malformed_header():
    headers = Headers({"Inlet-Signature": f"t=0{NOW},v1=" + "0" * 64, "Idempotency-Key": "k"})

    with pytest.raises(InvalidSignatureHeader):
        parse_headers(headers)


def test_standard_webhooks_with_a_non_utf8_body_is_no_match_not_an_error():
    secret = new_secret()
    signed = parse_headers(standard_headers(secret, BODY))

    assert matching_key(signed, b"\xff\xfe\x00{", [("k1", secret)]) is None


def test_standard_webhooks_key_is_the_decoded_secret_not_the_whole_string():
    secret = new_secret()
    t = int(datetime.now(UTC).timestamp())
    # A sender who (wrongly) keys HMAC with the whole "whsec_…" string, Standard Webhooks style.
    raw = hmac.new(secret.encode(), f"msg_1.{t}.".encode() + BODY, hashlib.sha256).digest()
    headers = Headers(
        {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(t),
            "webhook-signature": "v1," + base64.b64encode(raw).decode(),
        }
    )

    assert matching_key(parse_headers(headers), BODY, [("k1", secret)]) is None


# --- ed25519 (Standard Webhooks v1a) ---------------------------------------------------------


def ed25519_pair():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    return private, private.public_key()


def v1a_headers(private, body: bytes, msg_id: str = "msg_1", t: int = NOW) -> dict[str, str]:
    entry = "v1a," + base64.b64encode(private.sign(f"{msg_id}.{t}.".encode() + body)).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(t), "webhook-signature": entry}


def test_v1a_entries_are_decoded_and_kept_apart_from_v1_entries():
    private, _ = ed25519_pair()
    headers = v1a_headers(private, BODY)
    v1 = "v1," + "A" * 43 + "="
    headers["webhook-signature"] += " " + v1

    signed = parse_headers(headers)

    assert signed.scheme == "standard" and signed.headers["webhook-signature"] == v1
    assert len(signed.ed25519) == 1 and len(signed.ed25519[0]) == 64


def test_a_v1a_signature_matches_only_its_public_key():
    private, public = ed25519_pair()
    _, stranger = ed25519_pair()
    signed = parse_headers(v1a_headers(private, BODY))

    assert matching_key(signed, BODY, [("k_other", stranger), ("k_partner", public)]) == "k_partner"
    assert matching_key(signed, BODY + b" ", [("k_partner", public)]) is None


def test_a_v1a_signature_covers_the_id_and_the_timestamp():
    private, public = ed25519_pair()
    headers = v1a_headers(private, BODY, msg_id="msg_1", t=NOW)
    headers["webhook-timestamp"] = str(NOW + 1)

    assert matching_key(parse_headers(headers), BODY, [("k", public)]) is None


def test_an_hmac_secret_ignores_v1a_entries_and_a_public_key_ignores_v1_entries():
    private, public = ed25519_pair()
    secret = new_secret()
    only_v1a = parse_headers(v1a_headers(private, BODY))
    only_v1 = parse_headers(standard_headers(secret, BODY))

    assert matching_key(only_v1a, BODY, [("k_secret", secret)]) is None
    assert matching_key(only_v1, BODY, [("k_public", public)]) is None


@pytest.mark.parametrize("entry", ["v1a,abc", "v1a," + "A" * 86 + "=", "v1a " + "A" * 86 + "=="])
def test_a_malformed_v1a_entry_alone_is_a_malformed_header(entry):
    headers = {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": entry}

    with pytest.raises(InvalidSignatureHeader):
        parse_headers(headers)


@pytest.mark.parametrize(
    "text",
    [None, 42, "whpk_", "whpk_" + "A" * 43, "whsk_" + "A" * 43 + "=", "whpk_" + "A" * 44 + "=="],
)
def test_a_public_key_must_be_whpk_and_32_bytes(text):
    from services.ingest.signature import public_key

    with pytest.raises(ValueError):
        public_key(text)


# --- GitHub --------------------------------------------------------------------------------------


def test_github_signature_agrees_with_githubs_documented_example():
    """docs.github.com, "Validating webhook deliveries": secret "It's a Secret to Everybody",
    payload "Hello, World!"."""
    from services.ingest.signature import github_signature

    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature("It's a Secret to Everybody", b"Hello, World!") == expected
    headers = {"X-Hub-Signature-256": f"sha256={expected.upper()}", "X-GitHub-Delivery": "d-1"}
    signed = parse_headers(headers)
    assert (signed.scheme, signed.timestamp, signed.idempotency_key) == ("github", None, "d-1")
    secret = "It's a Secret to Everybody"  # noqa: S105 (GitHub's documented example)
    assert matching_key(signed, b"Hello, World!", [("k", secret)]) == "k"
    assert matching_key(signed, b"Hello, World?", [("k", secret)]) is None


@pytest.mark.parametrize("value", ["sha1=" + "a" * 40, "sha256=" + "a" * 63, "sha256=" + "g" * 64])
def test_a_malformed_github_signature_is_a_malformed_header(value):
    with pytest.raises(InvalidSignatureHeader):
        parse_headers({"X-Hub-Signature-256": value, "X-GitHub-Delivery": "d"})


def test_github_without_a_delivery_id_is_a_bad_key():
    with pytest.raises(BadRequest) as raised:
        parse_headers({"X-Hub-Signature-256": "sha256=" + "a" * 64})
    assert raised.value.code == "invalid_idempotency_key"


def test_github_deliveries_have_no_time_window():
    check_timestamp(None, now=NOW)  # nothing to refuse: GitHub signs no time


# --- Stripe --------------------------------------------------------------------------------------


def stripe_header(secret: str, body: bytes, t: int = NOW) -> str:
    import stripe

    header = f"t={t},v1={partner_signature(secret, t, body)}"
    stripe.WebhookSignature.verify_header(body.decode(), header, secret, tolerance=None)
    return header


def test_a_stripe_signature_is_verified_and_its_key_waits_for_the_body():
    secret = new_secret()
    signed = parse_headers({"Stripe-Signature": stripe_header(secret, BODY)})

    assert (signed.scheme, signed.timestamp, signed.idempotency_key) == ("stripe", NOW, None)
    assert matching_key(signed, BODY, [("k", secret)]) == "k"
    assert matching_key(signed, BODY, [("k", new_secret())]) is None


def test_stripe_test_mode_and_unknown_entries_are_skipped():
    secret = new_secret()
    header = stripe_header(secret, BODY)
    value = f"{header},v0={'0' * 64},v1=short,x=y"

    assert matching_key(parse_headers({"Stripe-Signature": value}), BODY, [("k", secret)]) == "k"


@pytest.mark.parametrize(
    "value", ["v1=" + "a" * 64, "t=now,v1=" + "a" * 64, f"t={NOW}", f"t={NOW},v0={'a' * 64}"]
)
def test_a_stripe_header_without_t_or_a_v1_entry_is_malformed(value):
    with pytest.raises(InvalidSignatureHeader):
        parse_headers({"Stripe-Signature": value})


@pytest.mark.parametrize(
    ("document", "key"),
    [({"id": "evt_1"}, "evt_1"), ({"id": "evt_" + "x" * 251}, "evt_" + "x" * 251)],
)
def test_a_stripe_events_id_becomes_its_idempotency_key(document, key):
    from services.ingest.signature import with_event_id

    signed = parse_headers({"Stripe-Signature": f"t={NOW},v1={hex_sig()}"})
    assert with_event_id(signed, document).idempotency_key == key


@pytest.mark.parametrize(
    "document", [{}, {"id": 1}, {"id": ""}, {"id": "x" * 256}, {"id": "a\nb"}, [1], "evt_1", None]
)
def test_a_stripe_event_without_a_usable_id_is_a_bad_key(document):
    from services.ingest.signature import with_event_id

    signed = parse_headers({"Stripe-Signature": f"t={NOW},v1={hex_sig()}"})
    with pytest.raises(BadRequest) as raised:
        with_event_id(signed, document)
    assert raised.value.code == "invalid_idempotency_key"


def test_other_schemes_keep_their_header_key_whatever_the_body():
    from services.ingest.signature import with_event_id

    signed = parse_headers(inlet_headers(f"t={NOW},v1={hex_sig()}", key="k1"))
    assert with_event_id(signed, {"id": "evt_other"}) is signed


# --- which schemes a source accepts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "signing", "accepted"),
    [
        ("inlet", "hmac", {"inlet", "standard"}),
        ("inlet", "ed25519", {"standard"}),
        ("github", "hmac", {"github"}),
        ("stripe", "hmac", {"stripe"}),
        ("github", "ed25519", set()),  # never created; accepts nothing if it were
    ],
)
def test_each_kind_of_source_accepts_its_schemes_only(provider, signing, accepted):
    from services.ingest.signature import accepts

    schemes = {"inlet", "standard", "github", "stripe"}
    assert {s for s in schemes if accepts(provider, signing, s)} == accepted


def test_the_header_order_decides_the_scheme():
    inlet = inlet_headers(f"t={NOW},v1={hex_sig()}")
    stripe = {"Stripe-Signature": f"t={NOW},v1={hex_sig()}"}
    github = {"X-Hub-Signature-256": "sha256=" + hex_sig(), "X-GitHub-Delivery": "d"}

    assert parse_headers({**github, **stripe, **inlet}).scheme == "inlet"
    assert parse_headers({**github, **stripe}).scheme == "stripe"
    assert parse_headers({**github, "webhook-id": "m"}).scheme == "github"


def test_two_v1a_entries_are_checked_and_a_third_is_refused_before_any_check():
    from services.ingest.signature import MAX_ED25519_SIGNATURES

    private, public = ed25519_pair()
    other, _ = ed25519_pair()
    good = v1a_headers(private, BODY)
    decoy = v1a_headers(other, BODY)["webhook-signature"]
    two = {**good, "webhook-signature": f"{decoy} {good['webhook-signature']}"}
    assert MAX_ED25519_SIGNATURES == 2
    assert matching_key(parse_headers(two), BODY, [("k", public)]) == "k"
    three = {**good, "webhook-signature": f"{decoy} {decoy} {good['webhook-signature']}"}
    with pytest.raises(InvalidSignatureHeader):
        parse_headers(three)
