"""Typed reads of environment variables with errors an operator can act on.

Every service builds its config object once from a mapping (``os.environ`` in production, a
plain dict in tests) through these helpers, so a bad value fails at start-up with the variable's
name instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

from collections.abc import Mapping


class ConfigError(ValueError):
    """A required variable is missing or a value cannot be used."""


def env_str(
    env: Mapping[str, str], name: str, default: str | None = None, *, min_length: int = 0
) -> str:
    """Return ``env[name]``; ``default`` when unset or empty; error when neither exists."""
    value = env.get(name, "")
    if value == "":
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        value = default
    if len(value) < min_length:
        raise ConfigError(f"{name} must be at least {min_length} characters long")
    return value


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    """Return ``env[name]`` as an int within ``[minimum, maximum]``."""
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_float(
    env: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float
) -> float:
    """Return ``env[name]`` as a float within ``[minimum, maximum]``."""
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def app_version(env: Mapping[str, str]) -> str:
    """The deployed version: ``APP_VERSION``, else ``COMMIT_SHA``, else ``unknown``."""
    return env.get("APP_VERSION") or env.get("COMMIT_SHA") or "unknown"
