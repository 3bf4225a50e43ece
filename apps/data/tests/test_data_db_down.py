"""The database goes down and comes back while the service keeps running.

While it is down every route that needs it answers 503 JSON quickly; the first request after
it is back succeeds (pooled connections to the old server are replaced, not reported), and
nothing written before the outage is lost.
"""

import time

from data_testkit import assert_json_error

CAROL = {"username": "carol", "password": "carols password"}


def test_outage_and_recovery(client, migrated, mariadb):
    migrated.add_user("carol", CAROL["password"], "editor")
    before = client.post_json("/api/quotes", {"author": "A", "text": "written before"}).json
    # Fill the pool with several idle connections: all of them go stale with the restart.
    with migrated.connection(), migrated.connection(), migrated.connection():
        pass

    mariadb.stop()
    started = time.monotonic()
    health = client.get("/api/health", status=503)
    assert_json_error(health, 503)
    assert health.json["status"] == "unavailable"
    assert health.json["db"]  # the reason, for the operator reading HAProxy's check log
    for response in [
        client.post_json("/api/auth", CAROL, status=503),
        client.get("/api/quotes/random", status=503),
        client.get("/api/quotes", status=503),
        client.post_json("/api/quotes", {"author": "A", "text": "lost?"}, status=503),
    ]:
        assert_json_error(response, 503)
        assert response.json == {"error": "database unavailable"}
    # Answers that don't need the database keep working, and nothing waited for a timeout.
    assert client.get("/api/version").json == {"version": "1.2.3-test"}
    assert client.get("/metrics").status_int == 200
    assert time.monotonic() - started < 2

    mariadb.start()
    # The very first request after the restart succeeds on a stale pooled connection.
    assert client.get("/api/health").json == {"status": "ok", "db": "ok"}
    assert client.post_json("/api/auth", CAROL).json == {"username": "carol", "role": "editor"}
    # Several in a row, so each stale idle connection is met and replaced.
    for _ in range(4):
        assert client.get("/api/quotes").json == {"items": [before], "total": 1}
    after = client.post_json("/api/quotes", {"author": "B", "text": "written after"}, status=201)
    assert client.get("/api/quotes").json["items"] == [before, after.json]
