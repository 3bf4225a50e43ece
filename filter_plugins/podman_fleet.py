"""What the local fleet asks podman for, and which podman objects belong to it (pure, unit-tested).

The local inventory describes each host's ports, volumes and disks as data
(``fleet_published_ports``, ``fleet_volumes``, ``fleet_disks``); these filters turn them into
podman's ``publish`` and ``volume`` values (inventories/local/group_vars/all/main.yml,
playbooks/provision_local.yml), match disk images to the loop devices ``losetup`` lists, and
find what a fleet left behind (playbooks/deprovision_local.yml). They decide what is reachable
from outside the containers and which data a deprovisioning removes, so they live here, where
``tests/unit/test_podman_fleet.py`` holds them without podman.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# Published ports listen on the loopback only: the fleet is reached through the controller,
# never from the network the controller is on.
LOOPBACK = "127.0.0.1"
SSH_PORT = 22
# The label provision_local.yml puts on every container and volume of a fleet (and
# image.yml on its golden images, with the tier's, and scale.yml on its secrets).
FLEET_LABEL = "fleetops.fleet"
TIER_LABEL = "fleetops.tier"
MAX_PORT = 65535
# Where a host finds its disks: GCE puts a disk attached as device name <name> at
# /dev/disk/by-id/google-<name> (udev). The containers have no udev, and systemd there waits in
# vain for the .device unit of any /dev path in fstab, so the local disks live outside /dev.
CONTAINER_DISK_DIR = "/var/lib/fleet-disks"
DISK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class PodmanFleetError(ValueError):
    """The inventory asks for something podman cannot do (caught before podman is called)."""


def _host_port(port: int) -> int:
    if not 0 < port <= MAX_PORT:
        raise PodmanFleetError(
            f"host port {port} is outside 1-{MAX_PORT}: check FLEET_PORT_BASE and the offsets"
        )
    return port


def podman_publish_specs(
    ssh_port: int | str,
    published_ports: Sequence[Mapping[str, Any]] | None,
    port_base: int | str,
) -> list[str]:
    """podman ``publish`` specs of one host: its SSH port, then each of ``published_ports``.

    Each published port is ``{offset, port}``: the container's ``port`` on the host port
    ``port_base + offset``, so that fleets with different bases (FLEET_PORT_BASE) coexist.
    """
    specs = [f"{LOOPBACK}:{_host_port(int(ssh_port))}:{SSH_PORT}"]
    for published in published_ports or []:
        host_port = _host_port(int(port_base) + int(published["offset"]))
        specs.append(f"{LOOPBACK}:{host_port}:{published['port']}")
    return specs


def podman_named_volumes(
    container_name: str, volumes: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, str]]:
    """The named volumes of one host: ``<container>-<name>`` mounted at ``path``.

    The container's name already carries the fleet's name, so two fleets on one machine never
    share a volume, and the volume outlives the container (re-provisioning keeps the data).
    """
    return [
        {"name": f"{container_name}-{volume['name']}", "path": str(volume["path"])}
        for volume in volumes or []
    ]


def podman_volume_specs(volumes: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """podman ``volume`` specs (``name:path``) of :func:`podman_named_volumes`' result."""
    return [f"{volume['name']}:{volume['path']}" for volume in volumes or []]


def _labelled(
    objects: Iterable[Mapping[str, Any]] | None,
    fleet_name: str,
    labels_of: Callable[[Mapping[str, Any]], Mapping[str, str] | None],
) -> list[str]:
    # Objects without labels (podman reports null) belong to no fleet.
    return [
        obj["Name"]
        for obj in objects or []
        if (labels_of(obj) or {}).get(FLEET_LABEL) == fleet_name
    ]


def podman_labelled_containers(
    containers: Iterable[Mapping[str, Any]] | None, fleet_name: str
) -> list[str]:
    """Names of the containers (``podman_container_info``) labelled with ``fleet_name``.

    A container that is no longer in the inventory (a host removed from it, info's other set)
    is still found and removed with its fleet, and never one of another fleet.
    """
    return _labelled(containers, fleet_name, lambda c: (c.get("Config") or {}).get("Labels"))


def podman_labelled_volumes(
    volumes: Iterable[Mapping[str, Any]] | None, fleet_name: str
) -> list[str]:
    """Names of the volumes (``podman_volume_info``) labelled with ``fleet_name``.

    As for containers: a volume of a host the inventory no longer has is still this fleet's
    data, and a volume of another fleet never is.
    """
    return _labelled(volumes, fleet_name, lambda v: v.get("Labels"))


def golden_image_ref(prefix: str, tier: str, release: str) -> str:
    """The golden image of ``tier``'s ``release``: ``<prefix>-<tier>:<tag>``. A tag takes
    letters, digits, ``_``, ``.`` and ``-`` (at most 128, not first ``.`` or ``-``); a
    release's other characters (a ``+`` of a local build) become ``_``."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", release)
    if not tag or tag[0] in ".-" or len(tag) > 128:
        raise ValueError(f"release {release!r} makes no image tag")
    return f"{prefix}-{tier}:{tag}"


def podman_labelled_secrets(
    secrets: Iterable[Mapping[str, Any]] | None, fleet_name: str
) -> list[str]:
    """Names of the secrets (``podman_secret_info``) labelled with ``fleet_name``: the app
    tiers' environment that golden-image nodes boot with (scale.yml)."""
    named = [{**secret, "Name": (secret.get("Spec") or {}).get("Name")} for secret in secrets or []]
    return _labelled(named, fleet_name, lambda s: (s.get("Spec") or {}).get("Labels"))


def podman_labelled_images(
    images: Iterable[Mapping[str, Any]] | None, fleet_name: str
) -> list[str]:
    """Ids of the images (``podman_image_info``) labelled with ``fleet_name``: its golden
    images (playbooks/image.yml), tagged or left untagged by a later capture."""
    with_ids = [{**image, "Name": image.get("Id")} for image in images or []]
    return _labelled(with_ids, fleet_name, lambda i: i.get("Labels"))


def podman_stale_images(
    images: Iterable[Mapping[str, Any]] | None, fleet_name: str, tier: str, keep: int
) -> list[str]:
    """Ids of ``tier``'s golden images of ``fleet_name`` to prune: all but the ``keep`` newest
    tagged ones (an untagged image, left by a capture of the same release, is always stale)."""
    own = [
        image
        for image in images or []
        if (image.get("Labels") or {}).get(FLEET_LABEL) == fleet_name
        and (image.get("Labels") or {}).get(TIER_LABEL) == tier
    ]
    tagged = sorted((i for i in own if i.get("RepoTags")), key=lambda i: i["Created"], reverse=True)
    kept = {image["Id"] for image in tagged[: max(keep, 0)]}
    return [image["Id"] for image in own if image["Id"] not in kept]


def podman_fleet_disks(
    host: str, state_dir: str, disks: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """The block devices of one host: a sparse image in the fleet's state directory each.

    ``disks`` are ``{name, size_gb}``; each becomes the image ``<state_dir>/disks/<host>-<name>
    .img`` (the state directory is the fleet's, so two fleets never share an image) that the
    host sees as ``/var/lib/fleet-disks/<name>``.
    """
    result = []
    for disk in disks or []:
        name, size = str(disk.get("name", "")), disk.get("size_gb")
        if not DISK_NAME.match(name):
            raise PodmanFleetError(f"{host}: disk name {name!r} must match {DISK_NAME.pattern}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise PodmanFleetError(f"{host}: disk {name} needs size_gb, a whole number from 1")
        if any(d["name"] == name for d in result):
            raise PodmanFleetError(f"{host}: two disks are named {name}")
        result.append(
            {
                "name": name,
                "size_gb": size,
                "file": f"{state_dir.rstrip('/')}/disks/{host}-{name}.img",
                "path": f"{CONTAINER_DISK_DIR}/{name}",
            }
        )
    return result


def losetup_devices(listing: str | Mapping[str, Any] | None) -> list[dict[str, str]]:
    """``{name, back_file}`` of each loop device in ``losetup --list --json`` output.

    losetup prints nothing at all when no loop device is attached.
    """
    if isinstance(listing, str):
        listing = json.loads(listing) if listing.strip() else {}
    return [
        {"name": str(dev["name"]), "back_file": str(dev.get("back-file") or "")}
        for dev in (listing or {}).get("loopdevices") or []
    ]


def _attached(listing: str | Mapping[str, Any] | None) -> dict[str, str]:
    # The backing file's (first) loop device. losetup shows a file deleted while attached as
    # "<path> (deleted)": that one is no longer the disk's image.
    attached: dict[str, str] = {}
    for dev in sorted(losetup_devices(listing), key=lambda d: d["name"]):
        attached.setdefault(dev["back_file"], dev["name"])
    return attached


def unattached_disks(
    disks: Iterable[Mapping[str, Any]] | None, listing: str | Mapping[str, Any] | None
) -> list[Mapping[str, Any]]:
    """The disks (:func:`podman_fleet_disks`) whose image no loop device is attached to."""
    attached = _attached(listing)
    return [disk for disk in disks or [] if disk["file"] not in attached]


def podman_disk_volumes(
    disks: Iterable[Mapping[str, Any]] | None, listing: str | Mapping[str, Any] | None
) -> list[str]:
    """podman ``volume`` specs that bind each disk's loop device node at the disk's path.

    A privileged container ignores ``device:``, but a bind-mounted device node works, and it
    follows a re-attachment: a new loop device is a new spec, so podman re-creates the
    container with it (the data is in the image).
    """
    attached = _attached(listing)
    specs = []
    for disk in disks or []:
        if disk["file"] not in attached:
            raise PodmanFleetError(f"no loop device is attached to {disk['file']}")
        specs.append(f"{attached[disk['file']]}:{disk['path']}")
    return specs


def fleet_loop_devices(listing: str | Mapping[str, Any] | None, disks_dir: str) -> list[str]:
    """The loop devices whose backing file is in ``disks_dir`` (one fleet's), deleted or not.

    Loop devices belong to the whole machine: only the backing file tells whose one is.
    """
    prefix = disks_dir.rstrip("/") + "/"
    return sorted(
        dev["name"] for dev in losetup_devices(listing) if dev["back_file"].startswith(prefix)
    )


class FilterModule:
    """Ansible entry point: the local fleet's podman specs, disks and labelled objects."""

    def filters(self) -> dict[str, Any]:
        return {
            "podman_publish_specs": podman_publish_specs,
            "podman_named_volumes": podman_named_volumes,
            "podman_volume_specs": podman_volume_specs,
            "podman_labelled_containers": podman_labelled_containers,
            "podman_labelled_volumes": podman_labelled_volumes,
            "podman_labelled_secrets": podman_labelled_secrets,
            "podman_labelled_images": podman_labelled_images,
            "podman_stale_images": podman_stale_images,
            "golden_image_ref": golden_image_ref,
            "podman_fleet_disks": podman_fleet_disks,
            "podman_disk_volumes": podman_disk_volumes,
            "unattached_disks": unattached_disks,
            "fleet_loop_devices": fleet_loop_devices,
        }
