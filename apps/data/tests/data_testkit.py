"""Constants and helpers shared by the data service's tests (conftest.py holds the fixtures)."""

TOKEN = "test-token-0123456789abcdef"


def assert_json_error(response, status):
    """A non-2xx answer as docs/api.md promises: JSON with a non-empty ``error`` message."""
    assert response.status_int == status
    assert response.content_type == "application/json"
    assert isinstance(response.json["error"], str)
    assert response.json["error"]
    assert "Traceback" not in response.text
