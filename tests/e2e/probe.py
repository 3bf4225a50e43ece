"""Connect to many (address, port) pairs at once and say what happened to each.

Runs inside a fleet container (with the container's python3) or on the controller.
Reads JSON [[address, port], ...] on stdin, prints JSON [[address, port, outcome], ...]:
``open`` (handshake done), ``refused`` (RST: the firewall let it through, nothing listens),
``timeout`` (no answer: dropped by the firewall), or ``error:<errno>``.
"""

import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 2.0


def probe(target):
    address, port = target
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect((address, port))
        outcome = "open"
    except ConnectionRefusedError:
        outcome = "refused"
    except TimeoutError:
        outcome = "timeout"
    except OSError as err:
        outcome = f"error:{err.errno}"
    finally:
        sock.close()
    return [address, port, outcome]


targets = json.load(sys.stdin)
with ThreadPoolExecutor(max_workers=64) as pool:
    json.dump(list(pool.map(probe, targets)), sys.stdout)
