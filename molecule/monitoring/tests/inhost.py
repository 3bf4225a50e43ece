"""What the monitoring scenario's tests run inside a host: HTTP (the image has python3, no curl),
its address, a unit's sandbox score; and waiting for a condition."""

import base64
import json
import shlex
import time

# Prints the status and the body as one JSON line; an HTTP error is an answer, not a failure.
_HTTP = """
import json, ssl, sys, urllib.error, urllib.request
url, method, body, headers, cafile = json.loads(sys.argv[1])
request = urllib.request.Request(url, method=method, headers=headers,
                                 data=body.encode() if body is not None else None)
context = ssl.create_default_context(cafile=cafile)
if not cafile:
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
try:
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        print(json.dumps([answer.status, answer.read().decode()]))
except urllib.error.HTTPError as error:
    print(json.dumps([error.code, error.read().decode()]))
"""


def http(host, url, method="GET", body=None, headers=None, *, cafile=None, user=None):
    """(status, body) of one request sent from inside the host; TLS verified against cafile
    when given; user is (name, password) for basic authentication."""
    headers = dict(headers or {})
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(user).encode()).decode()
    argument = json.dumps([url, method, body, headers, cafile])
    out = host.run(f"python3 -c {shlex.quote(_HTTP)} {shlex.quote(argument)}")
    assert out.rc == 0, out.stderr
    status, text = json.loads(out.stdout)
    return status, text


def get_json(host, url):
    status, text = http(host, url)
    assert status == 200, (url, status, text)
    return json.loads(text)


def address(host):
    return host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")


def sandbox_score(host, unit):
    out = host.check_output(f"systemd-analyze security {unit} --no-pager | tail -1")
    return float(out.split(":")[1].split()[0])


def assert_sandboxed(host, unit, limit=2.0):
    """The unit's systemd-analyze security exposure is at most ``limit`` (printed for the log)."""
    score = sandbox_score(host, unit)
    print(f"systemd-analyze security {unit}: {score}")
    assert score <= limit, host.check_output(f"systemd-analyze security {unit} --no-pager")


def wait_for(check, seconds, message, interval=1.0):
    """check()'s first true result within ``seconds``; else fail with message()."""
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, message()
        time.sleep(interval)
    return result
