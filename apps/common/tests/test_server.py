"""The waitress wrapper serves for real and stops cleanly on SIGTERM."""

import http.client
import os
import signal
import threading

import bottle

from fleetops_common.server import ServerSettings, build_server, configure_logging, serve_forever


def test_serves_until_sigterm(caplog):
    configure_logging()
    app = bottle.Bottle()
    app.route("/", callback=lambda: "hi")
    server = build_server(app, ServerSettings(host="127.0.0.1", port=0, threads=2))
    answers = []

    def probe_then_stop():
        conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=5)
        conn.request("GET", "/")
        res = conn.getresponse()
        answers.append((res.status, res.read(), res.getheader("Server")))
        conn.close()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Timer(0.2, probe_then_stop).start()
    with caplog.at_level("INFO"):
        serve_forever(server, "demo")
    assert answers == [(200, b"hi", "fleetops")]
    assert "received signal 15, shutting down" in caplog.text
    assert "stopped" in caplog.text
