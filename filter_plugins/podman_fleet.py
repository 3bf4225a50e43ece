"""What the local fleet asks podman for, and which podman objects belong to it (pure, unit-tested).

The local inventory describes each host's ports and volumes as data (``fleet_published_ports``,
``fleet_volumes``); these filters turn them into podman's ``publish`` and ``volume`` values
(inventories/local/group_vars/all.yml, playbooks/provision_local.yml) and find what a fleet
left behind by its label (playbooks/deprovision_local.yml). They decide what is reachable from
outside the containers and which data a deprovisioning removes, so they live here, where
``tests/unit/test_podman_fleet.py`` holds them without podman.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# Published ports listen on the loopback only: the fleet is reached through the controller,
# never from the network the controller is on.
LOOPBACK = "127.0.0.1"
SSH_PORT = 22
# The label provision_local.yml puts on every container and volume of a fleet.
FLEET_LABEL = "fleetops.fleet"
MAX_PORT = 65535


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


class FilterModule:
    """Ansible entry point: the local fleet's podman specs and labelled objects."""

    def filters(self) -> dict[str, Any]:
        return {
            "podman_publish_specs": podman_publish_specs,
            "podman_named_volumes": podman_named_volumes,
            "podman_volume_specs": podman_volume_specs,
            "podman_labelled_containers": podman_labelled_containers,
            "podman_labelled_volumes": podman_labelled_volumes,
        }
