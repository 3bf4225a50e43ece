"""tokens.py: HS256 only, every claim required, every failure one InvalidToken."""

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fleetops_info.tokens import Claims, InvalidToken, bearer_token, issue, verify

SECRET = "s" * 64 + "-the-signing-key"
OTHER_SECRET = "o" * 64 + "-someone-elses-key"
NOW = 1_700_000_000


def b64url(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**overrides):
    base = {"role": "viewer", "sub": "bob", "iat": NOW, "exp": NOW + 60}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def signed(payload: dict, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def rejects(token: str, match: str, now: float = NOW) -> None:
    with pytest.raises(InvalidToken, match=match):
        verify(SECRET, token, now=now)


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_round_trip(role):
    token = issue(SECRET, "antonio", role, 3600, now=NOW)
    assert verify(SECRET, token, now=NOW + 1) == Claims(
        username="antonio", role=role, issued_at=NOW, expires_at=NOW + 3600
    )


def test_issued_token_carries_exactly_the_documented_claims_signed_hs256():
    token = issue(SECRET, "antonio", "viewer", 120, now=NOW + 0.9)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert payload == {"role": "viewer", "sub": "antonio", "iat": NOW, "exp": NOW + 120}


def test_issue_uses_the_current_time_by_default():
    verify(SECRET, issue(SECRET, "bob", "viewer", 60))  # would raise if iat/exp were off


def test_issue_refuses_an_unknown_role():
    with pytest.raises(ValueError, match="unknown role"):
        issue(SECRET, "bob", "root", 60, now=NOW)


def test_valid_until_the_last_second_then_expired():
    token = issue(SECRET, "bob", "viewer", 60, now=NOW)
    assert verify(SECRET, token, now=NOW + 59.999).username == "bob"
    rejects(token, "expired", now=NOW + 60)
    rejects(token, "expired", now=NOW + 86_400)


def test_verify_uses_the_current_time_by_default():
    with pytest.raises(InvalidToken, match="expired"):
        verify(SECRET, issue(SECRET, "bob", "viewer", 60, now=NOW))


def test_token_from_the_future_is_refused_beyond_clock_skew():
    assert verify(SECRET, signed(claims(iat=NOW + 30, exp=NOW + 90)), now=NOW).role == "viewer"
    rejects(signed(claims(iat=NOW + 31, exp=NOW + 90)), "future")


def test_other_key_is_refused():
    rejects(issue(OTHER_SECRET, "bob", "admin", 60, now=NOW), "signature is invalid")


def test_tampered_signature_is_refused():
    token = issue(SECRET, "bob", "viewer", 60, now=NOW)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    rejects(f"{head}.{payload}.{flipped}", "signature is invalid")


def test_promoting_oneself_in_the_payload_breaks_the_signature():
    token = issue(SECRET, "bob", "viewer", 60, now=NOW)
    head, _, signature = token.split(".")
    forged = b64url(claims(role="admin"))
    rejects(f"{head}.{forged}.{signature}", "signature is invalid")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg):
    header = b64url({"alg": alg, "typ": "JWT"})
    payload = b64url(claims(role="admin"))
    rejects(f"{header}.{payload}.", "not signed with HS256|malformed")


def test_alg_none_with_a_copied_signature_is_refused():
    _, _, signature = issue(SECRET, "bob", "viewer", 60, now=NOW).split(".")
    header = b64url({"alg": "none", "typ": "JWT"})
    rejects(f"{header}.{b64url(claims(role='admin'))}.{signature}", "not signed with HS256")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_with_the_right_key_are_refused(algorithm):
    rejects(signed(claims(), algorithm=algorithm), "not signed with HS256")


def test_rs256_token_is_refused():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rejects(signed(claims(role="admin"), private_key, "RS256"), "not signed with HS256")


@pytest.mark.parametrize("missing", ["sub", "role", "iat", "exp"])
def test_every_claim_is_required(missing):
    rejects(signed(claims(**{missing: None})), f"lacks the '{missing}' claim")


def test_capstone_style_token_without_expiry_is_refused():
    # The seed's tokens carry only {"role": ...}; they never expire, so they must not pass.
    rejects(jwt.encode({"role": "viewer"}, SECRET, algorithm="HS256"), "lacks")


@pytest.mark.parametrize("role", ["root", "", "Admin", ["admin"], {"admin": 1}, 1, True])
def test_unknown_or_malformed_role_is_refused(role):
    rejects(signed(claims(role=role)), "role is not one of admin, editor, viewer")


@pytest.mark.parametrize("name", ["exp", "iat"])
@pytest.mark.parametrize("value", ["9999999999", True, 1.7e9, [1], {}])
def test_times_must_be_integers(name, value):
    rejects(signed(claims(**{name: value})), f"claim '{name}' must be an integer")


def test_subject_must_be_a_non_empty_string():
    rejects(signed(claims(sub="")), "subject is empty")
    rejects(signed(claims(sub=42)), "malformed")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b.c",
        "a.b",
        "....",
        "eyJhbGciOiJIUzI1NiJ9..",
        "\u00e9t\u00e9.\u00e9t\u00e9.\u00e9t\u00e9",
        f"{b64url({'alg': 'HS256'})}.bm90IGpzb24.c2ln",  # payload is not JSON
        f"{b64url({'alg': 'HS256'})}.{base64.urlsafe_b64encode(b'[1]').decode()}.c2ln",
        "x" * 10_000,
    ],
)
def test_garbage_is_refused(token):
    with pytest.raises(InvalidToken):
        verify(SECRET, token, now=NOW)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("  Bearer   abc  ", "abc"),
    ],
)
def test_bearer_header_is_parsed(header, token):
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, ""])
def test_missing_authorization_header(header):
    with pytest.raises(InvalidToken, match="missing Authorization header"):
        bearer_token(header)


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Basic YWRtaW46c2VjcmV0", "Token abc", "Bearer a b", "abc"]
)
def test_other_authorization_schemes_are_refused(header):
    with pytest.raises(InvalidToken, match="must be: Bearer <token>"):
        bearer_token(header)
