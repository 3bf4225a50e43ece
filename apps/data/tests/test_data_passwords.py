import base64
import hashlib

import pytest

from fleetops_data import passwords

# The capstone's users (docs/api.md): username, password, salt.
SEED_USERS = [
    ("admin", "secret", "F^S%QljSfV"),
    ("bob", "thisIsNotAPasswordBob", "F^S%QljSfV"),
    ("noadmin", "noPow3r", "KjvFUC#K*i"),
    ("antonio", "cotorro", "ew.qCjqXA/Hw"),
]


def capstone_hash(password, salt):
    # Written out independently of the code under test: hex SHA-512 of password + salt.
    return hashlib.sha512(f"{password}{salt}".encode()).hexdigest()


@pytest.mark.parametrize(("username", "password", "salt"), SEED_USERS)
def test_legacy_hashes_of_the_seed_users_verify(username, password, salt):
    stored = capstone_hash(password, salt)
    assert passwords.legacy_hash(password, salt) == stored
    assert passwords.verify(stored, salt, "sha512", password)
    assert passwords.verify(stored.upper(), salt, "sha512", password)  # hex case is cosmetic
    assert not passwords.verify(stored, salt, "sha512", password + "x")
    assert not passwords.verify(stored, salt, "sha512", username)
    assert not passwords.verify(stored, "other-salt", "sha512", password)


def test_legacy_hash_without_salt_or_with_unknown_scheme_fails():
    stored = capstone_hash("secret", "F^S%QljSfV")
    assert not passwords.verify(stored, None, "sha512", "secret")
    assert not passwords.verify(stored, "F^S%QljSfV", "md5", "secret")
    assert not passwords.verify(stored, "F^S%QljSfV", "", "secret")


def test_scrypt_round_trip():
    stored = passwords.hash_password("correct horse battery staple")
    assert stored.startswith("scrypt$16384$8$1$")
    assert passwords.verify(stored, None, "scrypt", "correct horse battery staple")
    assert not passwords.verify(stored, None, "scrypt", "correct horse battery stapl")
    assert not passwords.verify(stored, None, "scrypt", "")


def test_scrypt_hashes_are_salted():
    first, second = passwords.hash_password("same"), passwords.hash_password("same")
    assert first != second
    assert passwords.verify(first, None, "scrypt", "same")
    assert passwords.verify(second, None, "scrypt", "same")


def test_scrypt_handles_non_ascii_passwords():
    stored = passwords.hash_password("pässwörd 🔑")
    assert passwords.verify(stored, None, "scrypt", "pässwörd 🔑")
    assert not passwords.verify(stored, None, "scrypt", "passwort 🔑")


def test_a_hash_with_other_costs_still_verifies():
    # The format is self-describing so that the cost can be raised later.
    salt = b"0123456789abcdef"
    key = hashlib.scrypt(b"pw", salt=salt, n=1024, r=4, p=2, dklen=16)
    stored = f"scrypt$1024$4$2${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    assert passwords.verify(stored, None, "scrypt", "pw")
    assert not passwords.verify(stored, None, "scrypt", "pW")


GOOD = passwords.hash_password("pw")
SALT_AND_KEY = GOOD.split("$", 4)[4]


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "scrypt$",
        "scrypt$16384$8$1$onlyfive",
        "scrypt$16384$8$1$a$b$c",
        f"bcrypt$16384$8$1${SALT_AND_KEY}",
        f"scrypt$lots$8$1${SALT_AND_KEY}",
        f"scrypt$16384$8$1$!!notbase64!!${GOOD.rsplit('$', 1)[1]}",
        f"scrypt$16384$8$1${GOOD.split('$')[4]}$",  # empty key
        f"scrypt$3$8$1${SALT_AND_KEY}",  # n not a power of two
        f"scrypt$-16$8$1${SALT_AND_KEY}",  # negative cost
        f"scrypt$16384$0$1${SALT_AND_KEY}",
        f"scrypt$1048576$8$1${SALT_AND_KEY}",  # needs more memory than allowed
        f"scrypt$99999999999999999999999$8$1${SALT_AND_KEY}",
        capstone_hash("pw", "salt"),  # a legacy hash labelled as scrypt
    ],
)
def test_malformed_scrypt_hash_is_a_failed_login_not_an_exception(stored):
    assert passwords.verify(stored, None, "scrypt", "pw") is False


@pytest.fixture
def scrypt_calls(monkeypatch):
    calls = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):
        calls.append(kwargs.get("n"))
        return real(*args, **kwargs)

    passwords.verify_unknown("warm up the cached dummy hash")
    monkeypatch.setattr(passwords.hashlib, "scrypt", counting)
    return calls


@pytest.mark.parametrize(
    "check",
    [
        lambda: passwords.verify(GOOD, None, "scrypt", "pw"),
        lambda: passwords.verify(GOOD, None, "scrypt", "wrong"),
        lambda: passwords.verify(capstone_hash("secret", "s"), "s", "sha512", "secret"),
        lambda: passwords.verify(capstone_hash("secret", "s"), "s", "sha512", "wrong"),
        lambda: passwords.verify("garbage", None, "scrypt", "pw"),
        lambda: passwords.verify("x", None, "unknown-scheme", "pw"),
        lambda: passwords.verify_unknown("pw"),
    ],
    ids=[
        "scrypt-ok",
        "scrypt-wrong",
        "legacy-ok",
        "legacy-wrong",
        "malformed",
        "scheme",
        "unknown-user",
    ],
)
def test_every_check_costs_exactly_one_full_scrypt(scrypt_calls, check):
    # Equal cost for every path is what keeps response times from revealing which
    # usernames exist and which still carry a weak legacy hash.
    check()
    assert scrypt_calls == [16384]


def test_only_non_scrypt_schemes_need_a_rehash():
    assert passwords.needs_rehash("sha512")
    assert passwords.needs_rehash("md5")  # a scheme retired later must not linger either
    assert not passwords.needs_rehash("scrypt")
