import pytest

from fleetops_common.envconfig import ConfigError, app_version, env_float, env_int, env_str


def test_env_str_returns_value_and_default():
    assert env_str({"A": "x"}, "A") == "x"
    assert env_str({}, "A", "d") == "d"
    assert env_str({"A": ""}, "A", "d") == "d"


def test_env_str_required_and_min_length_name_the_variable():
    with pytest.raises(ConfigError, match="JWT_SECRET is required"):
        env_str({}, "JWT_SECRET")
    with pytest.raises(ConfigError, match="TOKEN must be at least 16"):
        env_str({"TOKEN": "short"}, "TOKEN", min_length=16)


def test_env_int_parses_and_bounds():
    assert env_int({}, "PORT", 5555, minimum=1, maximum=65535) == 5555
    assert env_int({"PORT": "80"}, "PORT", 5555, minimum=1, maximum=65535) == 80
    with pytest.raises(ConfigError, match="PORT must be an integer, got 'x'"):
        env_int({"PORT": "x"}, "PORT", 5555, minimum=1, maximum=65535)
    with pytest.raises(ConfigError, match="PORT must be between 1 and 65535, got 0"):
        env_int({"PORT": "0"}, "PORT", 5555, minimum=1, maximum=65535)


def test_env_float_parses_and_bounds():
    assert env_float({}, "T", 1.5, minimum=0.1, maximum=10) == 1.5
    assert env_float({"T": "2"}, "T", 1.5, minimum=0.1, maximum=10) == 2.0
    with pytest.raises(ConfigError, match="T must be a number"):
        env_float({"T": "soon"}, "T", 1.5, minimum=0.1, maximum=10)
    with pytest.raises(ConfigError, match="T must be between"):
        env_float({"T": "99"}, "T", 1.5, minimum=0.1, maximum=10)


def test_app_version_prefers_app_version_then_commit_sha():
    assert app_version({"APP_VERSION": "1.2", "COMMIT_SHA": "abc"}) == "1.2"
    assert app_version({"COMMIT_SHA": "abc"}) == "abc"
    assert app_version({}) == "unknown"
