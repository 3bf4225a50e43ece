import pytest

from fleetops_common.envconfig import ConfigError
from fleetops_data.config import Config

REQUIRED = {
    "DATA_API_TOKEN": "0123456789abcdef",
    "DB_USER": "fleetops",
    "DB_PASSWORD": "db-secret",
}


def test_defaults():
    config = Config.from_env(REQUIRED)
    assert config.bind_host == "127.0.0.1"
    assert config.port == 9876
    assert config.threads == 8
    assert config.version == "unknown"
    assert config.api_token == "0123456789abcdef"
    assert (config.db_host, config.db_port, config.db_name) == ("127.0.0.1", 3306, "fleetops")
    assert (config.db_user, config.db_password) == ("fleetops", "db-secret")
    assert config.db_pool_size == 8
    assert config.db_connect_timeout == 2.0
    assert config.db_read_timeout == 5.0
    assert config.db_write_timeout == 5.0


def test_every_variable_is_read():
    config = Config.from_env(
        {
            **REQUIRED,
            "BIND_HOST": "192.0.2.10",
            "PORT": "19876",
            "THREADS": "4",
            "APP_VERSION": "v7",
            "DB_HOST": "db1",
            "DB_PORT": "3307",
            "DB_NAME": "quotes",
            "DB_POOL_SIZE": "2",
            "DB_CONNECT_TIMEOUT": "0.5",
            "DB_READ_TIMEOUT": "3",
            "DB_WRITE_TIMEOUT": "4.5",
        }
    )
    assert (config.bind_host, config.port, config.threads) == ("192.0.2.10", 19876, 4)
    assert config.version == "v7"
    assert (config.db_host, config.db_port, config.db_name) == ("db1", 3307, "quotes")
    assert config.db_pool_size == 2
    assert (config.db_connect_timeout, config.db_read_timeout, config.db_write_timeout) == (
        0.5,
        3.0,
        4.5,
    )
    settings = config.server_settings()
    assert (settings.host, settings.port, settings.threads) == ("192.0.2.10", 19876, 4)


def test_pool_size_follows_threads_by_default():
    assert Config.from_env({**REQUIRED, "THREADS": "3"}).db_pool_size == 3


def test_version_falls_back_to_commit_sha():
    assert Config.from_env({**REQUIRED, "COMMIT_SHA": "abc123"}).version == "abc123"


def test_secrets_stay_out_of_repr():
    text = repr(Config.from_env(REQUIRED))
    assert "0123456789abcdef" not in text
    assert "db-secret" not in text
    assert "fleetops" in text


def test_config_is_immutable():
    config = Config.from_env(REQUIRED)
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATA_API_TOKEN", None),
        ("DATA_API_TOKEN", ""),
        ("DATA_API_TOKEN", "too-short"),
        ("DB_USER", None),
        ("DB_PASSWORD", None),
        ("PORT", "http"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("THREADS", "0"),
        ("THREADS", "many"),
        ("DB_PORT", "-1"),
        ("DB_PORT", "3306.5"),
        ("DB_POOL_SIZE", "0"),
        ("DB_POOL_SIZE", "1000"),
        ("DB_CONNECT_TIMEOUT", "0"),
        ("DB_CONNECT_TIMEOUT", "soon"),
        ("DB_READ_TIMEOUT", "-5"),
        ("DB_WRITE_TIMEOUT", "1e9"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    env = dict(REQUIRED)
    if value is None:
        del env[name]
    else:
        env[name] = value
    with pytest.raises(ConfigError, match=name):
        Config.from_env(env)


def test_logins_hash_on_at_most_the_cores_and_a_quarter_of_the_threads():
    config = Config.from_env(REQUIRED, cpus=2)
    assert (config.kdf_workers, config.kdf_waiting, config.kdf_wait_seconds) == (2, 2, 1.0)
    big = Config.from_env({**REQUIRED, "THREADS": "64"}, cpus=8)
    assert (big.kdf_workers, big.kdf_waiting) == (8, 8)
    small = Config.from_env({**REQUIRED, "THREADS": "2"}, cpus=4)
    assert (small.kdf_workers, small.kdf_waiting) == (1, 0)
    assert Config.from_env(REQUIRED).kdf_workers >= 1  # from this process's CPU affinity


def test_the_kdf_bounds_are_read_and_must_leave_threads_to_reads():
    config = Config.from_env(
        {**REQUIRED, "KDF_WORKERS": "3", "KDF_WAITING": "1", "KDF_WAIT_SECONDS": "0.25"}, cpus=2
    )
    assert (config.kdf_workers, config.kdf_waiting, config.kdf_wait_seconds) == (3, 1, 0.25)
    with pytest.raises(ConfigError, match="starve reads"):
        Config.from_env({**REQUIRED, "KDF_WORKERS": "4", "KDF_WAITING": "4"}, cpus=2)
