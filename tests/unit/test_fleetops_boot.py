"""roles/image_boot/files/fleetops_boot.py: a golden image's first boot, on real files.

The platform is the local one (a file where podman mounts the secret) or GCE, whose metadata
server and Secret Manager are answered here by a fetch function that checks each request as
those APIs require it (the metadata header, the bearer token).
"""

from __future__ import annotations

import base64
import grp
import json
import os
import socket
from pathlib import Path

import pytest

from tests.conftest import load_module

boot = load_module("roles/image_boot/files/fleetops_boot.py")

ENV = '# Ansible managed\nBIND_HOST="10.0.0.40"\nJWT_SECRET="s3cret"\nPORT="5555"\n'
EXPORTER = 'ARGS="--web.listen-address=10.0.0.40:9100 --collector.textfile.directory=/x"\n'


def test_bind_host_is_replaced_in_place_or_appended():
    assert boot.set_env_value(ENV, "BIND_HOST", "10.0.0.7") == ENV.replace("10.0.0.40", "10.0.0.7")
    assert boot.set_env_value('PORT="1"', "BIND_HOST", "10.0.0.7") == (
        'PORT="1"\nBIND_HOST="10.0.0.7"\n'
    )
    assert boot.set_env_value("", "BIND_HOST", "1.2.3.4") == 'BIND_HOST="1.2.3.4"\n'
    # A value is written as the role writes it (JSON), so a regex replacement in it stays literal.
    assert boot.set_env_value('BIND_HOST="x"\n', "BIND_HOST", r"\1") == 'BIND_HOST="\\\\1"\n'


def test_an_address_is_replaced_only_where_it_stands_alone():
    text = "a=10.0.0.4:9100 b=10.0.0.40 c=110.0.0.4 d=10.0.0.4"
    assert boot.replace_address(text, "10.0.0.4", "10.0.0.9") == (
        "a=10.0.0.9:9100 b=10.0.0.40 c=110.0.0.4 d=10.0.0.9"
    )


def test_the_route_address_is_one_of_this_machines():
    address = boot.route_address()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((address, 0))  # fails unless the address is local


def _settings(tmp_path: Path, platform: str = "local", secret: str = "") -> dict:
    (tmp_path / "exporter").write_text(EXPORTER)
    (tmp_path / "exporter").chmod(0o644)
    return {
        "platform": platform,
        "env_secret": secret or str(tmp_path / "secret"),
        "env_file": str(tmp_path / "info.env"),
        "image_address": "10.0.0.40",
        "address_files": [str(tmp_path / "exporter")],
        "marker": str(tmp_path / "state" / "booted"),
    }


def test_a_local_boot_writes_the_secret_with_the_node_address(tmp_path):
    settings = _settings(tmp_path)
    (tmp_path / "secret").write_text(ENV)
    written = boot.boot(settings, "10.0.0.7")
    assert written == [settings["env_file"], str(tmp_path / "exporter")]
    env = tmp_path / "info.env"
    assert env.read_text() == ENV.replace("10.0.0.40", "10.0.0.7")
    assert env.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "exporter").read_text() == EXPORTER.replace("10.0.0.40", "10.0.0.7")
    assert (tmp_path / "exporter").stat().st_mode & 0o777 == 0o644
    # A second boot finds the address already in place and rewrites only the environment.
    assert boot.boot(settings, "10.0.0.7") == [settings["env_file"]]


def test_a_boot_without_the_platform_secret_fails_and_writes_nothing(tmp_path):
    settings = _settings(tmp_path)
    with pytest.raises(boot.BootError, match="no secret"):
        boot.boot(settings, "10.0.0.7")
    assert not (tmp_path / "info.env").exists()
    with pytest.raises(boot.BootError, match="unknown platform"):
        boot.read_secret({**settings, "platform": "aws"}, "x")


CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
CA = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n"


def test_a_credentials_bundle_splits_into_its_certificates_and_its_one_key():
    assert boot.split_pem(KEY + CERT + CA) == (CERT + CA, KEY)
    assert boot.split_pem(CERT.rstrip() + "\n" + KEY.replace("EC ", "")) == (
        CERT, KEY.replace("EC ", "")
    )  # fmt: skip
    for bad in ("", CERT, KEY, CERT + KEY + KEY, "not a pem"):
        with pytest.raises(boot.BootError, match="one key and its certificate"):
            boot.split_pem(bad)


def test_the_journal_credentials_are_written_for_the_uploaders_group(tmp_path):
    group = grp.getgrgid(os.getgid()).gr_name
    settings = {
        **_settings(tmp_path),
        "journal": {
            "secret": str(tmp_path / "journal"),
            "cert": str(tmp_path / "upload.pem"),
            "key": str(tmp_path / "upload.key"),
            "group": group,
        },
    }
    (tmp_path / "secret").write_text(ENV)
    # The image holds no credentials: without the platform's, the node does not boot.
    with pytest.raises(boot.BootError, match="no secret"):
        boot.boot(settings, "10.0.0.7")
    (tmp_path / "journal").write_text(CERT + KEY)
    written = boot.boot(settings, "10.0.0.7")
    assert written[:3] == [settings["env_file"], str(tmp_path / "upload.pem"),
                           str(tmp_path / "upload.key")]  # fmt: skip
    assert (tmp_path / "upload.pem").read_text() == CERT
    assert (tmp_path / "upload.key").read_text() == KEY
    assert (tmp_path / "upload.key").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "upload.pem").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "upload.key").stat().st_gid == grp.getgrnam(group).gr_gid


def test_a_gce_boot_reads_the_secrets_named_in_the_metadata(tmp_path):
    asked: list[str] = []
    secrets = {"prod-info-env": ENV, "prod-info-journal": CERT + KEY}

    def fetch(url: str, headers: dict[str, str]) -> bytes:
        asked.append(url)
        if url.startswith(boot.GCE_METADATA):
            assert headers == {"Metadata-Flavor": "Google"}
            if "/instance/attributes/fleetops-" in url:
                kind = url.rsplit("/fleetops-", 1)[1].removesuffix("-secret")
                return f"projects/p/secrets/prod-info-{kind}".encode()
            assert url.endswith("/instance/service-accounts/default/token")
            return json.dumps({"access_token": "tok", "expires_in": 3599}).encode()
        name = url.removeprefix(f"{boot.SM_API}/projects/p/secrets/")
        assert name.endswith("/versions/latest:access")
        assert headers == {"Authorization": "Bearer tok"}
        value = secrets[name.removesuffix("/versions/latest:access")]
        return json.dumps({"payload": {"data": base64.b64encode(value.encode()).decode()}}).encode()

    settings = _settings(tmp_path, "gce", "fleetops-env-secret")
    settings["journal"] = {
        "secret": "fleetops-journal-secret",
        "cert": str(tmp_path / "upload.pem"),
        "key": str(tmp_path / "upload.key"),
        "group": grp.getgrgid(os.getgid()).gr_name,
    }
    boot.boot(settings, "10.0.0.8", fetch)
    assert (tmp_path / "info.env").read_text() == ENV.replace("10.0.0.40", "10.0.0.8")
    assert (tmp_path / "upload.key").read_text() == KEY
    assert len(asked) == 6


def test_main_marks_the_node_booted_only_after_a_boot(tmp_path, capsys):
    settings = _settings(tmp_path)
    settings["image_address"] = boot.route_address()
    (tmp_path / "exporter").write_text(EXPORTER.replace("10.0.0.40", settings["image_address"]))
    path = tmp_path / "boot.json"
    path.write_text(json.dumps(settings))
    assert boot.main(["fleetops-boot", str(path)]) == 1
    assert "no secret" in capsys.readouterr().err
    assert not Path(settings["marker"]).exists()
    (tmp_path / "secret").write_text(ENV)
    assert boot.main(["fleetops-boot", str(path)]) == 0
    assert Path(settings["marker"]).read_text().strip() == boot.route_address()


LBS = ["prod-uc1-lb1.us-central1-a.c.p.internal", "prod-uc1-lb2.us-central1-a.c.p.internal"]
ADDRESSES = {LBS[0]: "10.10.16.2", LBS[1]: "10.10.16.3"}


def test_a_groups_info_nodes_spread_over_their_regions_lbs():
    firsts = {
        boot.data_urls(LBS, "9876", f"prod-uc1-info-{n:04x}", ADDRESSES.__getitem__)[0]
        for n in range(40)
    }
    assert firsts == {"http://10.10.16.2:9876", "http://10.10.16.3:9876"}
    # The same node always picks the same, and keeps the other as its fallback.
    one = boot.data_urls(LBS, "9876", "prod-uc1-info-x7k2", ADDRESSES.__getitem__)
    assert one == boot.data_urls(LBS, "9876", "prod-uc1-info-x7k2", ADDRESSES.__getitem__)
    assert sorted(one) == ["http://10.10.16.2:9876", "http://10.10.16.3:9876"]
    assert boot.data_urls([], "9876", "x") == []


def _gce_fetch(attributes: dict[str, str]):
    def fetch(url: str, headers: dict[str, str]) -> bytes:
        assert headers == {"Metadata-Flavor": "Google"}
        key = url.rsplit("/instance/attributes/", 1)[1]
        return attributes[key].encode()

    return fetch


def test_an_info_node_of_another_region_reaches_data_through_its_own_lbs():
    # The secret was captured in the primary region: its data URLs are that region's lbs.
    env = ENV + 'DATA_URL="http://10.10.0.2:9876"\nDATA_FALLBACK_URLS="http://10.10.0.3:9876"\n'
    settings = {"platform": "gce", "data_lbs_attribute": "fleetops-data-lbs",
                "data_port_attribute": "fleetops-data-port"}  # fmt: skip
    fetch = _gce_fetch({"fleetops-data-lbs": ",".join(LBS), "fleetops-data-port": "9876"})
    out = boot.region_env(env, settings, "prod-uc1-info-x7k2", fetch, ADDRESSES.__getitem__)
    urls = boot.data_urls(LBS, "9876", "prod-uc1-info-x7k2", ADDRESSES.__getitem__)
    assert f'DATA_URL="{urls[0]}"' in out
    assert f'DATA_FALLBACK_URLS="{urls[1]}"' in out
    assert "10.10.0." not in out
    # data, and the local platform, keep their environment as it is.
    assert boot.region_env(env, {"platform": "gce"}, "prod-uc1-data-a1b2", fetch) == env
    assert boot.region_env(env, {**settings, "platform": "local"}, "info3", fetch) == env
    # A template that names no lb would leave info without data: the boot fails instead.
    empty = _gce_fetch({"fleetops-data-lbs": "", "fleetops-data-port": "9876"})
    with pytest.raises(boot.BootError, match="no lb"):
        boot.region_env(env, settings, "prod-uc1-info-x7k2", empty)
