"""The local fleet's podman values and its labelled objects (filter_plugins/podman_fleet.py)."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT, load_module

pf = load_module("filter_plugins/podman_fleet.py")
HOSTS = yaml.safe_load((ROOT / "inventories/local/hosts.yml").read_text())["all"]["children"]
LB1 = HOSTS["lb"]["hosts"]["lb1"]
DB1 = HOSTS["db"]["hosts"]["db1"]


def test_lb1_publishes_ssh_http_and_https_on_the_loopback_from_the_fleets_base():
    specs = pf.podman_publish_specs(2201 + 8000, LB1["fleet_published_ports"], 8000)
    assert specs == ["127.0.0.1:10201:22", "127.0.0.1:8080:80", "127.0.0.1:8443:443"]


def test_another_base_moves_every_host_port_and_no_container_port():
    specs = pf.podman_publish_specs("17601", LB1["fleet_published_ports"], "15400")
    assert specs == ["127.0.0.1:17601:22", "127.0.0.1:15480:80", "127.0.0.1:15843:443"]


@pytest.mark.parametrize("published", [None, []])
def test_a_host_without_published_ports_publishes_only_ssh(published):
    assert pf.podman_publish_specs(10204, published, 8000) == ["127.0.0.1:10204:22"]


def test_every_port_is_published_on_the_loopback_only():
    ports = [{"offset": n, "port": 1000 + n} for n in range(1, 20)]
    for spec in pf.podman_publish_specs(10201, ports, 8000):
        assert spec.startswith("127.0.0.1:")


@pytest.mark.parametrize(
    ("ssh_port", "ports", "base"),
    [
        (65536, [], 8000),
        (10201, [{"offset": 443, "port": 443}], 65200),
        (10201, [{"offset": -9000, "port": 80}], 8000),
    ],
)
def test_a_host_port_outside_tcps_range_is_refused_before_podman_sees_it(ssh_port, ports, base):
    with pytest.raises(pf.PodmanFleetError, match="outside 1-65535"):
        pf.podman_publish_specs(ssh_port, ports, base)


CACHE = [{"name": "cache", "path": "/var/cache/app"}]


def test_a_volume_carries_the_fleets_container_name():
    volumes = pf.podman_named_volumes("ci-db1", CACHE)
    assert volumes == [{"name": "ci-db1-cache", "path": "/var/cache/app"}]
    assert pf.podman_volume_specs(volumes) == ["ci-db1-cache:/var/cache/app"]


def test_two_fleets_never_share_a_volume():
    mine = pf.podman_named_volumes("fleetops-db1", CACHE)
    theirs = pf.podman_named_volumes("fleetops-test-db1", CACHE)
    assert {v["name"] for v in mine}.isdisjoint(v["name"] for v in theirs)


@pytest.mark.parametrize("volumes", [None, []])
def test_a_host_without_volumes_mounts_nothing(volumes):
    # Empty, so that provision_local.yml's default(omit, true) leaves podman's volume unset.
    assert pf.podman_named_volumes("ci-info1", volumes) == []
    assert pf.podman_volume_specs(volumes) == []


def test_several_volumes_keep_their_order():
    volumes = pf.podman_named_volumes(
        "ci-db1", [{"name": "data", "path": "/var/lib/mysql"}, {"name": "logs", "path": "/var/log"}]
    )
    assert pf.podman_volume_specs(volumes) == ["ci-db1-data:/var/lib/mysql", "ci-db1-logs:/var/log"]


STATE = "/repo/.fleet/ci"


def test_db1s_database_is_on_a_disk_image_in_its_fleets_state_directory():
    # Not a volume: a block device the mariadb role formats and mounts, as on GCE.
    assert "fleet_volumes" not in DB1
    disks = pf.podman_fleet_disks("db1", STATE, DB1["fleet_disks"])
    assert disks == [
        {
            "name": "data",
            "size_gb": DB1["fleet_disks"][0]["size_gb"],
            "file": "/repo/.fleet/ci/disks/db1-data.img",
            "path": "/var/lib/fleet-disks/data",
        }
    ]
    assert DB1["mariadb_data_device"] == disks[0]["path"]


def test_two_fleets_never_share_a_disk_image():
    mine = pf.podman_fleet_disks("db1", "/repo/.fleet/ci", DB1["fleet_disks"])
    theirs = pf.podman_fleet_disks("db1", "/repo/.fleet/ci-test/", DB1["fleet_disks"])
    assert mine[0]["file"] != theirs[0]["file"]
    assert theirs[0]["file"] == "/repo/.fleet/ci-test/disks/db1-data.img"


@pytest.mark.parametrize("disks", [None, []])
def test_a_host_without_disks_gets_none(disks):
    assert pf.podman_fleet_disks("lb1", STATE, disks) == []
    assert pf.podman_disk_volumes(pf.podman_fleet_disks("lb1", STATE, disks), "") == []


@pytest.mark.parametrize(
    ("disks", "message"),
    [
        ([{"name": "Data", "size_gb": 4}], "disk name 'Data'"),
        ([{"name": "../x", "size_gb": 4}], "disk name '../x'"),
        ([{"size_gb": 4}], "disk name ''"),
        ([{"name": "data"}], "needs size_gb"),
        ([{"name": "data", "size_gb": 0}], "needs size_gb"),
        ([{"name": "data", "size_gb": "4G"}], "needs size_gb"),
        ([{"name": "data", "size_gb": True}], "needs size_gb"),
        ([{"name": "data", "size_gb": 4}, {"name": "data", "size_gb": 8}], "two disks"),
    ],
)
def test_a_disk_the_images_cannot_be_made_from_is_refused(disks, message):
    with pytest.raises(pf.PodmanFleetError, match=message):
        pf.podman_fleet_disks("db1", STATE, disks)


# `losetup --list --json --output NAME,BACK-FILE` as util-linux 2.38 prints it.
LOSETUP = """{
   "loopdevices": [
      {"name": "/dev/loop2", "back-file": "/repo/.fleet/ci-test/disks/db1-data.img"},
      {"name": "/dev/loop0", "back-file": "/repo/.fleet/ci/disks/db1-data.img"},
      {"name": "/dev/loop1", "back-file": "/repo/.fleet/ci/disks/db2-data.img (deleted)"},
      {"name": "/dev/loop3", "back-file": "/var/tmp/other.img"},
      {"name": "/dev/loop4", "back-file": "/repo/.fleet/ci/disks/db1-data.img"},
      {"name": "/dev/loop5", "back-file": "/repo/.fleet/ci/disks.old/db1-data.img"}
   ]
}"""
NO_LOOP_DEVICES = '{\n   "loopdevices": [\n\n   ]\n}\n'


def test_losetup_output_is_read_as_devices_and_their_backing_files():
    devices = pf.losetup_devices(LOSETUP)
    assert devices[0] == {
        "name": "/dev/loop2",
        "back_file": "/repo/.fleet/ci-test/disks/db1-data.img",
    }
    assert len(devices) == 6
    assert pf.losetup_devices(NO_LOOP_DEVICES) == []
    assert pf.losetup_devices("") == []
    assert pf.losetup_devices({"loopdevices": None}) == []


def test_a_disk_keeps_its_loop_device_and_is_bound_into_the_container_at_its_path():
    disks = pf.podman_fleet_disks("db1", STATE, DB1["fleet_disks"])
    # Two devices on one image (attached by hand): the same one every run, the lowest.
    assert pf.podman_disk_volumes(disks, LOSETUP) == ["/dev/loop0:/var/lib/fleet-disks/data"]
    assert pf.unattached_disks(disks, LOSETUP) == []


def test_a_disk_without_a_loop_device_is_attached_and_never_bound_unattached():
    disks = pf.podman_fleet_disks("db2", STATE, DB1["fleet_disks"])
    # db2's image was deleted and made again: the device on the deleted file is not its own.
    assert pf.unattached_disks(disks, LOSETUP) == disks
    assert pf.unattached_disks(disks, NO_LOOP_DEVICES) == disks
    with pytest.raises(pf.PodmanFleetError, match="no loop device is attached to"):
        pf.podman_disk_volumes(disks, LOSETUP)


def test_deprovisioning_detaches_this_fleets_loop_devices_only():
    # The match ends at the directory: disks.old/ (or another fleet's directory) is not it.
    assert pf.fleet_loop_devices(LOSETUP, "/repo/.fleet/ci/disks") == [
        "/dev/loop0",
        "/dev/loop1",
        "/dev/loop4",
    ]
    assert pf.fleet_loop_devices(LOSETUP, "/repo/.fleet/ci-test/disks/") == ["/dev/loop2"]
    assert pf.fleet_loop_devices(LOSETUP, "/repo/.fleet/other/disks") == []
    assert pf.fleet_loop_devices(NO_LOOP_DEVICES, "/repo/.fleet/ci/disks") == []


# Shaped like containers.podman's podman_container_info / podman_volume_info results.
CONTAINERS = [
    {"Name": "ci-lb1", "Config": {"Labels": {"fleetops.fleet": "ci", "fleetops.host": "lb1"}}},
    {"Name": "ci-info3", "Config": {"Labels": {"fleetops.fleet": "ci"}}},  # not in the inventory
    {"Name": "ci-test-lb1", "Config": {"Labels": {"fleetops.fleet": "ci-test"}}},
    {"Name": "ci-tool", "Config": {"Labels": {"fleetops.host": "ci"}}},
    {"Name": "ci-nolabels", "Config": {"Labels": None}},
    {"Name": "ci-noconfig", "Config": None},
    {"Name": "ci-bare"},
]
VOLUMES = [
    {"Name": "ci-db1-data", "Labels": {"fleetops.fleet": "ci"}},
    {"Name": "ci-test-db1-data", "Labels": {"fleetops.fleet": "ci-test"}},
    {"Name": "ci-scratch", "Labels": {}},
    {"Name": "ci-null", "Labels": None},
    {"Name": "ci-bare"},
]


def test_only_the_containers_labelled_with_this_fleet_are_its_own():
    assert pf.podman_labelled_containers(CONTAINERS, "ci") == ["ci-lb1", "ci-info3"]
    assert pf.podman_labelled_containers(CONTAINERS, "ci-test") == ["ci-test-lb1"]
    assert pf.podman_labelled_containers(CONTAINERS, "other") == []


def test_only_the_volumes_labelled_with_this_fleet_are_its_own():
    assert pf.podman_labelled_volumes(VOLUMES, "ci") == ["ci-db1-data"]
    assert pf.podman_labelled_volumes(VOLUMES, "ci-test") == ["ci-test-db1-data"]


# Shaped like podman_image_info's and podman_secret_info's results.
IMAGES = [
    {"Id": "a1", "RepoTags": ["localhost/fleetops-ci-info:r1"], "Created": "2026-12-01T10:00:00Z",
     "Labels": {"fleetops.fleet": "ci", "fleetops.tier": "info"}},
    {"Id": "a2", "RepoTags": ["localhost/fleetops-ci-info:r2"], "Created": "2026-12-02T10:00:00Z",
     "Labels": {"fleetops.fleet": "ci", "fleetops.tier": "info"}},
    {"Id": "a3", "RepoTags": ["localhost/fleetops-ci-info:r3"], "Created": "2026-12-03T10:00:00Z",
     "Labels": {"fleetops.fleet": "ci", "fleetops.tier": "info"}},
    # r3 captured before: left untagged, though newer than r1.
    {"Id": "a4", "RepoTags": [], "Created": "2026-12-03T09:00:00Z",
     "Labels": {"fleetops.fleet": "ci", "fleetops.tier": "info"}},
    {"Id": "d1", "RepoTags": ["localhost/fleetops-ci-data:r1"], "Created": "2026-11-01T10:00:00Z",
     "Labels": {"fleetops.fleet": "ci", "fleetops.tier": "data"}},
    {"Id": "o1", "RepoTags": ["localhost/fleetops-ci-test-info:r1"],
     "Created": "2026-10-01T10:00:00Z",
     "Labels": {"fleetops.fleet": "ci-test", "fleetops.tier": "info"}},
    {"Id": "base", "RepoTags": ["localhost/fleetops-base:bookworm"],
     "Created": "2026-09-01T10:00:00Z", "Labels": None},
]  # fmt: skip
SECRETS = [
    {"Spec": {"Name": "ci-info-env-0123", "Labels": {"fleetops.fleet": "ci"}}},
    {"Spec": {"Name": "ci-test-info-env-4567", "Labels": {"fleetops.fleet": "ci-test"}}},
    {"Spec": {"Name": "someone-elses", "Labels": {}}},
    {"Spec": {"Name": "older-podman", "Labels": None}},
]


def test_a_fleets_golden_images_and_secrets_are_found_by_label():
    assert pf.podman_labelled_images(IMAGES, "ci") == ["a1", "a2", "a3", "a4", "d1"]
    assert pf.podman_labelled_images(IMAGES, "ci-test") == ["o1"]
    assert pf.podman_labelled_secrets(SECRETS, "ci") == ["ci-info-env-0123"]
    assert pf.podman_labelled_secrets(SECRETS, "ci-test") == ["ci-test-info-env-4567"]


def test_a_golden_image_is_named_by_fleet_tier_and_release_as_a_valid_tag():
    ref = pf.golden_image_ref("localhost/fleetops-ci", "info", "ada512756a28+t1796275205.r4")
    assert ref == "localhost/fleetops-ci-info:ada512756a28_t1796275205.r4"
    assert pf.golden_image_ref("p", "data", "083be28") == "p-data:083be28"
    for release in ["", "-x", ".x", "a" * 129]:
        with pytest.raises(ValueError, match="makes no image tag"):
            pf.golden_image_ref("p", "info", release)


def test_pruning_keeps_the_newest_tagged_images_of_the_tier_only():
    assert pf.podman_stale_images(IMAGES, "ci", "info", 2) == ["a1", "a4"]
    assert pf.podman_stale_images(IMAGES, "ci", "info", 1) == ["a1", "a2", "a4"]
    assert pf.podman_stale_images(IMAGES, "ci", "data", 2) == []
    assert pf.podman_stale_images(IMAGES, "ci", "info", 0) == ["a1", "a2", "a3", "a4"]
    assert pf.podman_stale_images(IMAGES, "other", "info", 2) == []


@pytest.mark.parametrize("objects", [None, []])
def test_nothing_listed_is_nothing_labelled(objects):
    assert pf.podman_labelled_containers(objects, "ci") == []
    assert pf.podman_labelled_volumes(objects, "ci") == []
    assert pf.podman_labelled_images(objects, "ci") == []
    assert pf.podman_labelled_secrets(objects, "ci") == []
    assert pf.podman_stale_images(objects, "ci", "info", 2) == []


def test_a_containers_labels_are_not_a_volumes_and_vice_versa():
    # The two listings keep labels in different places: each filter reads its own.
    assert pf.podman_labelled_volumes(CONTAINERS, "ci") == []
    assert pf.podman_labelled_containers(VOLUMES, "ci") == []


def test_the_ansible_filters():
    assert set(pf.FilterModule().filters()) == {
        "podman_publish_specs",
        "podman_named_volumes",
        "podman_volume_specs",
        "podman_labelled_containers",
        "podman_labelled_volumes",
        "podman_labelled_secrets",
        "podman_labelled_images",
        "podman_stale_images",
        "golden_image_ref",
        "podman_fleet_disks",
        "podman_disk_volumes",
        "unattached_disks",
        "fleet_loop_devices",
    }
