"""config.py: defaults, every variable parsed, every bad value named in the error."""

import pytest

from fleetops_common.envconfig import ConfigError
from fleetops_common.server import ServerSettings
from fleetops_info.config import Config, DataURL, parse_data_url, parse_data_urls

SECRET = "x" * 32
TOKEN = "t" * 16
REQUIRED = {"JWT_SECRET": SECRET, "DATA_API_TOKEN": TOKEN}


def test_defaults_with_only_the_required_secrets():
    config = Config.from_env(REQUIRED)
    assert config == Config(
        bind_host="127.0.0.1",
        port=5555,
        threads=8,
        version="unknown",
        jwt_secret=SECRET,
        jwt_ttl_seconds=3600,
        data_url=DataURL("http", "127.0.0.1", 9876, ""),
        data_api_token=TOKEN,
        data_connect_timeout=1.0,
        data_timeout=3.0,
    )
    assert config.server_settings() == ServerSettings(host="127.0.0.1", port=5555, threads=8)


def test_every_variable_is_read():
    env = {
        **REQUIRED,
        "BIND_HOST": "0.0.0.0",  # noqa: S104 -- a value under test, nothing binds here
        "PORT": "8080",
        "THREADS": "16",
        "APP_VERSION": "2.0.1",
        "JWT_TTL_SECONDS": "60",
        "DATA_URL": "https://lb.internal:9443/data/",
        "DATA_CONNECT_TIMEOUT": "0.25",
        "DATA_TIMEOUT": "10",
        "DATA_FALLBACK_URLS": "http://lb2.internal:9876, https://lb3.internal/data,",
    }
    config = Config.from_env(env)
    assert config.data_fallback_urls == (
        DataURL("http", "lb2.internal", 9876, ""),
        DataURL("https", "lb3.internal", 443, "/data"),
    )
    assert (config.bind_host, config.port, config.threads) == ("0.0.0.0", 8080, 16)  # noqa: S104
    assert config.version == "2.0.1"
    assert config.jwt_ttl_seconds == 60
    assert config.data_url == DataURL("https", "lb.internal", 9443, "/data")
    assert (config.data_connect_timeout, config.data_timeout) == (0.25, 10.0)


def test_version_falls_back_to_commit_sha():
    assert Config.from_env({**REQUIRED, "COMMIT_SHA": "abc123"}).version == "abc123"


def test_repr_does_not_leak_secrets():
    text = repr(Config.from_env(REQUIRED))
    assert SECRET not in text
    assert TOKEN not in text
    assert "data_connect_timeout=1.0" in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("THREADS", "0"),
        ("THREADS", "many"),
        ("JWT_SECRET", "too-short-for-hs256"),
        ("JWT_SECRET", "x" * 31),
        ("JWT_TTL_SECONDS", "59"),
        ("JWT_TTL_SECONDS", "86401"),
        ("JWT_TTL_SECONDS", "1h"),
        ("DATA_URL", "ftp://data:9876"),
        ("DATA_URL", "data:9876"),
        ("DATA_URL", "127.0.0.1:9876"),
        ("DATA_URL", "http://"),
        ("DATA_URL", "http://:9876"),
        ("DATA_URL", "http://data:99999"),
        ("DATA_URL", "http://data:port"),
        ("DATA_URL", "http://[::1"),
        ("DATA_URL", "http://user:pw@data:9876"),
        ("DATA_URL", "http://data:9876/?x=1"),
        ("DATA_URL", "http://data:9876/#top"),
        ("DATA_API_TOKEN", "short"),
        ("DATA_API_TOKEN", "t" * 15),
        ("DATA_CONNECT_TIMEOUT", "0"),
        ("DATA_CONNECT_TIMEOUT", "61"),
        ("DATA_CONNECT_TIMEOUT", "soon"),
        ("DATA_TIMEOUT", "-1"),
        ("DATA_TIMEOUT", "nan"),
        ("DATA_TIMEOUT", "inf"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({**REQUIRED, name: value})


@pytest.mark.parametrize("name", ["JWT_SECRET", "DATA_API_TOKEN"])
def test_secrets_are_required(name):
    env = {key: value for key, value in REQUIRED.items() if key != name}
    with pytest.raises(ConfigError, match=f"{name} is required"):
        Config.from_env(env)


@pytest.mark.parametrize(
    ("value", "expected", "text"),
    [
        ("http://data", DataURL("http", "data", 80, ""), "http://data:80"),
        ("https://data", DataURL("https", "data", 443, ""), "https://data:443"),
        ("HTTP://Data.Internal:9876/", DataURL("http", "data.internal", 9876, ""), None),
        ("http://[::1]:9876", DataURL("http", "::1", 9876, ""), "http://[::1]:9876"),
        ("http://lb:80/prefix//", DataURL("http", "lb", 80, "/prefix"), "http://lb:80/prefix"),
    ],
)
def test_data_url_forms(value, expected, text):
    url = parse_data_url("DATA_URL", value)
    assert url == expected
    assert str(url) == (text or str(expected))


def test_no_fallback_urls_by_default_and_a_bad_one_is_named():
    assert Config.from_env(REQUIRED).data_fallback_urls == ()
    assert parse_data_urls("X", " , ") == ()
    with pytest.raises(ConfigError, match="DATA_FALLBACK_URLS must start with http"):
        Config.from_env({**REQUIRED, "DATA_FALLBACK_URLS": "http://lb2:9876,lb3:9876"})
