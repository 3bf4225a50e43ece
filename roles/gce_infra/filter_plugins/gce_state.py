"""Turn one environment's variables into the GCE resources it needs (the desired state, as data).

Provisioning is a loop over these lists (``tasks/*.yml``), so everything that matters about the
cloud fleet (names, labels, which machine is public, which firewall rule exists, which disk is
protected, how the app tiers' groups are made, sized and healed) is decided here, by pure
functions that are unit-tested without Google
(``tests/unit/test_gce_state.py``). The firewall rules are derived from the same policy the
hosts enforce with nftables (``hardening_firewall_policy``): the VPC and the hosts agree by
construction, and a policy change reaches both.

Every reference between resources is a full ``https://www.googleapis.com/compute/v1/...`` URL:
that is what the API returns, so the google.cloud modules compare equal values and a second run
changes nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

ANYONE = "anyone"
CONTROLLER = "controller"
EVERY_HOST = "all"
# Google's health checkers as a policy source: the load balancer's (lb) and the managed
# instance groups' autohealing (info, data). The hosts' nftables admit them as
# hardening_health_checker_cidrs.
HEALTH_CHECKERS = "health-checkers"
# The inventory groups site.yml uses, in the order instances are listed (and created).
TIERS = ("lb", "info", "data", "db", "monitoring")
# The app tiers are regional managed instance groups: instances from a versioned template of the
# tier's golden image (playbooks/image.yml), sized by Google's autoscaler between a region's
# min and max, replaced by autohealing when their service fails its health check. The other
# tiers are single instances Ansible names and keeps (their state, their addresses).
APP_TIERS = ("info", "data")
# Each app tier's groups are one of two sets, a or b (<env>-<region short>-<tier>-<set>): an
# infrastructure A/B (playbooks/infra_ab.yml) brings the other set up from the tier's current
# template beside the serving one, switches HAProxy to it and deletes the old set. The inventory
# records which set serves (app_sets in app_images.yml); a, until a first A/B.
APP_SETS = ("a", "b")
# Their ports and health paths (inventories/shared/fleet.yml's fleet_<tier>_port and
# fleet_<tier>_health_path; the role passes the inventory's).
APP_PORTS = {"info": 5555, "data": 9876}
APP_HEALTH_PATHS = {"info": "/_health", "data": "/api/health"}
# The autoscaler's policy unless the inventory sets gce_infra_autoscaling:
#   cpu_target: the group's mean CPU it keeps (0.6: room for a zone's share to fail over, and
#     for the minute a new instance takes to boot and pass its checks);
#   cool_down_seconds: how long a new instance's CPU is ignored (its boot and first requests);
#   scale_in_max, scale_in_window_seconds: at most this many instances fewer than the peak of
#     the window, so a dip between two peaks does not remove what the next peak needs;
#   autoheal_delay_seconds: a new instance's grace before autohealing judges it (boot-to-serving
#     from the golden image is under a minute; a converged one is never in a group).
AUTOSCALING = {
    "cpu_target": 0.6,
    "cool_down_seconds": 120,
    "scale_in_max": 1,
    "scale_in_window_seconds": 600,
    "autoheal_delay_seconds": 180,
}
# An app instance reads its environment (its secrets) at first boot from Secret Manager, which
# has no narrower OAuth scope than cloud-platform: IAM limits it to its tier's secrets.
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
SECRET_ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"  # noqa: S105 (a role's name)
# A tier's secrets: its service's environment, and the client certificate and key its nodes
# ship their journals with (the image's builder's, taken out of the image).
APP_SECRET_KINDS = ("env", "journal")
# Google's fixed ranges: IAP TCP forwarding (SSH through `gcloud compute start-iap-tunnel`) and
# the front ends / health checkers of the global external load balancer.
IAP_RANGE = "35.235.240.0/20"
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
# Only what the Ops Agent needs: write logs and metrics. Nothing can read or change the project.
SERVICE_ACCOUNT_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")
SERVICE_ACCOUNT_SCOPES = (
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
)
# The db hosts also copy each dump to the backup bucket; the bucket's IAM binding
# (objectCreator) then limits them to adding objects: they can neither read, overwrite nor
# delete a backup.
BACKUP_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
BACKUP_WRITER_ROLE = "roles/storage.objectCreator"
# Read-only Compute access for the hosts that follow the app tiers' managed instance groups:
# the lb hosts keep HAProxy's servers in step with them (roles/haproxy's reconciler), the
# monitoring hosts' Prometheus discovers their instances (gce_sd_configs).
COMPUTE_READER_ROLE = "roles/compute.viewer"
COMPUTE_READER_SCOPE = "https://www.googleapis.com/auth/compute.readonly"
COMPUTE_READERS = ("lb", "monitoring")
# Cloud Storage bucket names: 3-63 characters, lowercase, digits, "-", "_", "." (dotted names
# need domain verification, so none here), starting and ending with a letter or digit.
BUCKET_RE = re.compile(r"^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$")
# The tiers whose instances keep state on a separate data disk (attached as device `data`,
# never auto-deleted, snapshotted daily, kept by deprovisioning unless destroy_data): db the
# database, monitoring Prometheus' TSDB, Alertmanager's silences and the central logs. The
# config keys `<tier>_disk_size_gb` and `<tier>_disk_type` size each (set at creation only).
DATA_DISK_TIERS = ("db", "monitoring")
DATA_DISK_SIZE_GB = 50
DATA_DISK_TYPE = "pd-balanced"
# When the daily snapshot of a data disk starts (UTC, on the hour as the API requires): after
# the db's nightly dump (mariadb_backup_on_calendar, 03:15 on the hosts' clock).
SNAPSHOT_START_TIME = "04:00"
COMPUTE = "https://www.googleapis.com/compute/v1/projects"
# GCE resource names: lowercase, start with a letter, at most 63 characters.
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# Service account ids are shorter: 6 to 30 characters.
ACCOUNT_ID_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
LOCAL_ENVIRONMENTS = ("local",)
DEFAULT_IMAGE = "projects/debian-cloud/global/images/family/debian-12"
# Requests a second one region's HAProxy instance takes from the global LB before new clients
# spill over to the next nearest region (gce_infra_lb_max_rate_per_instance).
LB_MAX_RATE_PER_INSTANCE = 1000
# Policy priorities: accepts first, the explicit deny last (GCE evaluates low numbers first).
ALLOW_PRIORITY = 1000
DENY_PRIORITY = 65535


class GceStateError(ValueError):
    """The environment's variables cannot describe a valid fleet (caught before any API call)."""


# --- inputs -------------------------------------------------------------------------------


def _region_short(name: str) -> str:
    """``europe-west1`` -> ``ew1``: short enough that instance names stay readable."""
    parts = name.split("-")
    digits = re.sub(r"^\D*", "", parts[-1])
    return "".join(p[0] for p in parts if p) + digits


def _check_name(kind: str, name: str) -> str:
    if not NAME_RE.match(name):
        raise GceStateError(f"{kind} name {name!r} is not a valid GCE name (a-z, 0-9, -; ≤ 63)")
    return name


def _regions(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The regions with defaults filled in, checked: unique, one primary, disjoint subnets."""
    raw = config.get("regions") or []
    if not raw:
        raise GceStateError("at least one region is required")
    regions = []
    for index, region in enumerate(raw):
        for key in ("name", "zone", "subnet_cidr"):
            if not region.get(key):
                raise GceStateError(f"region #{index} lacks {key!r}")
        # Every zone of the region, where its regional groups may place instances (Google picks
        # them): Prometheus discovers the app instances zone by zone. The instances' zone is one.
        zones = list(region.get("zones") or [region["zone"]])
        for zone in [region["zone"], *zones]:
            if not str(zone).startswith(region["name"] + "-"):
                raise GceStateError(f"zone {zone!r} is not in region {region['name']!r}")
        if region["zone"] not in zones:
            raise GceStateError(
                f"region {region['name']!r}: zones lacks its zone {region['zone']!r}"
            )
        try:
            subnet = ipaddress.ip_network(region["subnet_cidr"])
        except ValueError:
            raise GceStateError(
                f"region {region['name']!r}: bad subnet_cidr {region['subnet_cidr']!r}"
            ) from None
        if subnet.version != 4 or not subnet.is_private:
            raise GceStateError(f"region {region['name']!r}: subnet must be private IPv4")
        given = region.get("counts") or {}
        unknown = set(given) - set(TIERS)
        if unknown:
            raise GceStateError(f"region {region['name']!r}: unknown tiers {sorted(unknown)}")
        autoscaling = {
            tier: _group_size(region["name"], tier, given.get(tier)) for tier in APP_TIERS
        }
        # An app tier's count is its group's minimum: what serves at the quietest hour.
        counts = {
            tier: autoscaling[tier]["min"]
            if tier in APP_TIERS
            else _count(region["name"], tier, given)
            for tier in TIERS
        }
        regions.append(
            {
                "name": region["name"],
                "short": region.get("short") or _region_short(region["name"]),
                "zone": region["zone"],
                "zones": zones,
                "subnet": subnet,
                "primary": bool(region.get("primary", index == 0)),
                "counts": counts,
                "autoscaling": autoscaling,
            }
        )
    _check_region_set(regions)
    return regions


def _whole_number(value: Any, what: str, minimum: int = 1) -> int:
    """``value`` if it is a whole number of at least ``minimum`` (YAML's true is not 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GceStateError(f"{what} must be a whole number >= {minimum}, not {value!r}")
    return value


def _count(region: str, tier: str, given: Mapping[str, Any]) -> int:
    return _whole_number(given.get(tier, 0), f"region {region!r}: the count of {tier}", 0)


def _group_size(region: str, tier: str, value: Any) -> dict[str, int]:
    """An app tier's ``{min, max}``: the bounds of its managed instance group's autoscaler."""
    if not isinstance(value, Mapping) or set(value) != {"min", "max"}:
        raise GceStateError(
            f"region {region!r}: {tier} is a managed instance group; its count is"
            f" {{min: N, max: M}}, not {value!r}"
        )
    low, high = value["min"], value["max"]
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (low, high)):
        raise GceStateError(f"region {region!r}: {tier}'s min and max must be whole numbers")
    if not 1 <= low <= high:
        raise GceStateError(f"region {region!r}: {tier} needs 1 <= min <= max, got {low}..{high}")
    return {"min": low, "max": high}


def _check_region_set(regions: list[dict[str, Any]]) -> None:
    for key in ("name", "short"):
        values = [r[key] for r in regions]
        if len(set(values)) != len(values):
            raise GceStateError(f"region {key}s must be unique, got {values} (set `short`)")
    # Subnets of one VPC must not overlap, or routing between regions is ambiguous (GCE refuses).
    for i, a in enumerate(regions):
        for b in regions[i + 1 :]:
            if a["subnet"].overlaps(b["subnet"]):
                raise GceStateError(
                    f"subnets overlap: {a['name']} {a['subnet']} and {b['name']} {b['subnet']}"
                )
    primaries = [r["name"] for r in regions if r["primary"]]
    if len(primaries) != 1:
        raise GceStateError(f"exactly one region must be primary (the db primary), got {primaries}")


def _check_counts(environment: str, regions: list[dict[str, Any]]) -> None:
    """The shape the architecture promises, region by region."""
    for region in regions:
        counts = region["counts"]
        # Two HAProxy instances per region: the global LB keeps serving while one reloads,
        # is replaced (A/B) or its zone has trouble. The local fleet has one, on purpose.
        if environment not in LOCAL_ENVIRONMENTS and counts["lb"] < 2:
            raise GceStateError(
                f"region {region['name']!r}: a cloud environment needs at least 2 lb instances,"
                f" got {counts['lb']}"
            )
        # One MariaDB per region: the primary in the primary region, a replica elsewhere.
        if counts["db"] > 1:
            raise GceStateError(f"region {region['name']!r}: at most one db per region")
        if region["primary"] and counts["db"] != 1:
            raise GceStateError(f"primary region {region['name']!r} needs exactly 1 db")


def _controller_ranges(config: Mapping[str, Any]) -> list[str]:
    """Where `controller` connects from: the IAP range and/or the configured admin CIDRs."""
    ranges = [IAP_RANGE] if config.get("iap_ssh", True) else []
    for cidr in config.get("admin_cidrs") or []:
        try:
            network = ipaddress.ip_network(cidr)
        except ValueError:
            raise GceStateError(f"admin CIDR {cidr!r} is not a network") from None
        if network.prefixlen == 0:
            raise GceStateError("admin CIDR 0.0.0.0/0 would open SSH to the internet")
        ranges.append(str(network))
    if not ranges:
        raise GceStateError("no controller range: enable IAP or give admin CIDRs (SSH lockout)")
    return sorted(set(ranges), key=ipaddress.ip_network)


# --- names --------------------------------------------------------------------------------


def instance_name(environment: str, region_short: str, tier: str, number: int) -> str:
    """``prod-ew1-info2``: environment, region, tier and a 1-based number, never reused."""
    return _check_name("instance", f"{environment}-{region_short}-{tier}{number}")


def snapshot_policy_name(environment: str, region_short: str, tier: str = "db") -> str:
    """``prod-ew1-db-snapshots``: one schedule per region and data-disk tier (a policy serves
    its region's disks of that tier, and labels their snapshots with it)."""
    return _check_name("resource policy", f"{environment}-{region_short}-{tier}-snapshots")


def _links(project: str) -> dict[str, str]:
    return {"global": f"{COMPUTE}/{project}/global", "regions": f"{COMPUTE}/{project}/regions"}


# --- resources ----------------------------------------------------------------------------


def _firewalls(
    environment: str,
    network: str,
    policy: Sequence[Mapping[str, Any]],
    controller: list[str],
) -> list[dict[str, Any]]:
    """One allow rule per policy entry, the LB health checkers, then deny everything else.

    Group sources become **source tags** (every instance carries its group as a network tag), so
    a new host is allowed where its group is without touching the rules, as with nftables.
    GCE matches a rule when the source is in ``source_ranges`` *or* carries one of
    ``source_tags``, which is exactly the union the policy's ``from`` list means.
    """
    if not policy:
        raise GceStateError("the firewall policy is empty: nothing (not even SSH) would be allowed")
    known = set(TIERS) | {ANYONE, CONTROLLER, HEALTH_CHECKERS}
    rules = []
    for entry in policy:
        for key in ("name", "to", "ports", "from"):
            if key not in entry:
                raise GceStateError(f"firewall policy entry {entry!r} lacks {key!r}")
        unknown = ({entry["to"]} - set(TIERS) - {EVERY_HOST}) | (set(entry["from"]) - known)
        if unknown:
            raise GceStateError(
                f"firewall policy entry {entry['name']!r}: unknown groups {sorted(unknown)}"
            )
        sources = set(entry["from"])
        ranges = ["0.0.0.0/0"] if ANYONE in sources else []
        if ANYONE not in sources:
            ranges = [
                *(controller if CONTROLLER in sources else []),
                *(HEALTH_CHECK_RANGES if HEALTH_CHECKERS in sources else []),
            ]
        tags = [] if ANYONE in sources else sorted(sources & set(TIERS))
        rules.append(
            {
                "name": _check_name("firewall", f"{environment}-allow-{entry['name']}"),
                "network": network,
                "direction": "INGRESS",
                "priority": ALLOW_PRIORITY,
                "allowed": [
                    {"ip_protocol": protocol, "ports": [str(p) for p in sorted(entry["ports"])]}
                    for protocol in entry.get("protocols", ["tcp"])
                ],
                "source_ranges": ranges,
                "source_tags": tags,
                "target_tags": [] if entry["to"] == EVERY_HOST else [entry["to"]],
                "policy": entry["name"],
            }
        )
    rules.append(
        {
            "name": f"{environment}-allow-lb-health-checks",
            "network": network,
            "direction": "INGRESS",
            "priority": ALLOW_PRIORITY,
            "allowed": [{"ip_protocol": "tcp", "ports": ["80", "443"]}],
            "source_ranges": list(HEALTH_CHECK_RANGES),
            "source_tags": [],
            "target_tags": ["lb"],
            "policy": None,
        }
    )
    # GCE already denies ingress implicitly; an explicit rule makes it visible and loggable.
    rules.append(
        {
            "name": f"{environment}-deny-all-ingress",
            "network": network,
            "direction": "INGRESS",
            "priority": DENY_PRIORITY,
            "denied": [{"ip_protocol": "all"}],
            "source_ranges": ["0.0.0.0/0"],
            "source_tags": [],
            "target_tags": [],
            "policy": None,
        }
    )
    return rules


def _service_accounts(environment: str, project: str) -> list[dict[str, Any]]:
    accounts = []
    for tier in TIERS:
        account_id = f"{environment}-{tier}"
        if not ACCOUNT_ID_RE.match(account_id):
            raise GceStateError(f"service account id {account_id!r} is not valid (6-30 chars)")
        accounts.append(
            {
                "tier": tier,
                "name": f"{account_id}@{project}.iam.gserviceaccount.com",
                "display_name": f"fleetops {environment} {tier}",
                "roles": [
                    *SERVICE_ACCOUNT_ROLES,
                    *([COMPUTE_READER_ROLE] if tier in COMPUTE_READERS else []),
                ],
            }
        )
    return accounts


def _instance_disks(
    config: Mapping[str, Any], name: str, data_disk: str | None, zone_link: str
) -> list[dict[str, Any]]:
    """The boot disk (dies with the instance) and, for the DATA_DISK_TIERS, the data disk
    (never auto-deleted)."""
    disks: list[dict[str, Any]] = [
        {
            "boot": True,
            "auto_delete": True,
            "initialize_params": {
                "disk_name": name,
                "source_image": config.get("image", DEFAULT_IMAGE),
                "disk_size_gb": int(config.get("boot_disk_size_gb", 20)),
            },
        }
    ]
    if data_disk:
        disks.append(
            {
                "boot": False,
                "auto_delete": False,
                "device_name": "data",
                "source": {"selfLink": f"{zone_link}/disks/{data_disk}"},
            }
        )
    return disks


def _instances_and_disks(
    config: Mapping[str, Any],
    environment: str,
    regions: list[dict[str, Any]],
    accounts: dict[str, str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    project = config["project"]
    machine_types = config.get("machine_types") or {}
    missing = [t for t in TIERS if not machine_types.get(t)]
    if missing:
        raise GceStateError(f"machine_types lacks {missing}")
    instances, disks = [], []
    for region in regions:
        zone = region["zone"]
        zone_link = f"{COMPUTE}/{project}/zones/{zone}"
        region_link = f"{_links(project)['regions']}/{region['name']}"
        subnet_link = _subnet_link(project, environment, region)
        for tier in (t for t in TIERS if t not in APP_TIERS):
            for number in range(1, region["counts"][tier] + 1):
                name = instance_name(environment, region["short"], tier, number)
                labels = {
                    "role": tier,
                    "env": environment,
                    "region": region["name"],
                    # The lb hosts name their region's app groups with it (<env>-<short>-<tier>).
                    "region_short": region["short"],
                }
                if tier == "db":
                    labels["db_role"] = "primary" if region["primary"] else "replica"
                data_disk = None
                if tier in DATA_DISK_TIERS:
                    data_disk = _check_name("disk", f"{name}-data")
                    disks.append(
                        {
                            "name": data_disk,
                            "zone": zone,
                            "size_gb": int(config.get(f"{tier}_disk_size_gb", DATA_DISK_SIZE_GB)),
                            "type": config.get(f"{tier}_disk_type", DATA_DISK_TYPE),
                            # As at its creation, before region_short: a disk is never relabelled.
                            "labels": {
                                **{k: v for k, v in labels.items() if k != "region_short"},
                                "data": "true",
                            },
                            "self_link": f"{zone_link}/disks/{data_disk}",
                            # The region's daily snapshot schedule of the tier (_backups),
                            # attached once.
                            "snapshot_policy": (
                                f"{region_link}/resourcePolicies/"
                                f"{snapshot_policy_name(environment, region['short'], tier)}"
                            ),
                            # Provisioning creates it only when absent and never passes it to a
                            # module that could resize or replace it; deprovisioning keeps it
                            # unless told explicitly (destroy_data).
                            "protected": True,
                        }
                    )
                instances.append(
                    {
                        "name": name,
                        "tier": tier,
                        "region": region["name"],
                        "zone": zone,
                        "machine_type": machine_types[tier],
                        "labels": labels,
                        # The network tags the firewall rules target and match as sources.
                        "tags": [tier],
                        # No access config: no external IP. Egress goes through Cloud NAT,
                        # ingress through the global LB (lb) or IAP (SSH).
                        "network_interfaces": [{"subnetwork": {"selfLink": subnet_link}}],
                        "external_ip": False,
                        "service_accounts": [
                            {
                                "email": accounts[tier],
                                "scopes": [
                                    *SERVICE_ACCOUNT_SCOPES,
                                    *([BACKUP_SCOPE] if tier == "db" else []),
                                    *([COMPUTE_READER_SCOPE] if tier in COMPUTE_READERS else []),
                                ],
                            }
                        ],
                        "disks": _instance_disks(config, name, data_disk, zone_link),
                        "data_disk": data_disk,
                        # The db instance cannot be deleted by accident (console, API, a typo).
                        # A monitoring instance may go (re-provisioning replaces it): its data
                        # is on the data disk, which outlives it.
                        "deletion_protection": tier == "db",
                        "self_link": f"{zone_link}/instances/{name}",
                    }
                )
    return instances, disks


def _readable(text: str, length: int = 32) -> str:
    """``text`` as a part of GCE names: a-z, 0-9 and single dashes, at most ``length``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].rstrip("-")


def release_ref(release: str) -> str:
    """A release as a part of GCE names (a-z, 0-9, -): ``ada5127_t17.r4`` -> ``ada5127-t17-r4-``
    and 6 hex digits of its hash, so two releases that differ only in what a name cannot hold
    never share an image or a template."""
    if not release:
        raise GceStateError("an app image needs the release it holds")
    readable = _readable(release)
    digest = hashlib.sha256(release.encode()).hexdigest()[:6]
    return f"{readable}-{digest}" if readable else f"r-{digest}"


def _template_name(prefix: str, release: str, properties: Mapping[str, Any]) -> str:
    """``<prefix>-<release>-`` and 6 hex digits of the release and everything the template holds:
    a template is immutable, so another machine type, disk or image under the same release is
    another template (an A/B's new set, or the instances the groups make from then on), never
    an update of one that groups use."""
    content = json.dumps({"release": release, "properties": properties}, sort_keys=True)
    digest = hashlib.sha256(content.encode()).hexdigest()[:6]
    return _check_name("template", f"{prefix}-{_readable(release, 24) or 'r'}-{digest}")


def _label_value(value: str) -> str:
    """GCE label values: lowercase letters, digits, - and _, at most 63."""
    return re.sub(r"[^a-z0-9_-]", "_", value.lower())[:63]


def _app_images(config: Mapping[str, Any]) -> dict[str, str]:
    """``app_images``: the release each app tier's golden image holds (playbooks/image.yml
    records it); a tier without one has no group yet."""
    images = config.get("app_images") or {}
    unknown = sorted(set(images) - set(APP_TIERS))
    if unknown:
        raise GceStateError(f"app_images names tiers that are no app tier: {unknown}")
    for tier, release in images.items():
        if not isinstance(release, str) or not release:
            raise GceStateError(f"app_images.{tier} must be a release, not {release!r}")
    return dict(images)


def _app_sets(config: Mapping[str, Any]) -> dict[str, str]:
    """``app_sets``: the set (a or b) each app tier's groups are, a unless an A/B recorded b."""
    given = config.get("app_sets") or {}
    unknown = sorted(set(given) - set(APP_TIERS))
    if unknown:
        raise GceStateError(f"app_sets names tiers that are no app tier: {unknown}")
    for tier, chosen in given.items():
        if chosen not in APP_SETS:
            raise GceStateError(f"app_sets.{tier} must be one of {list(APP_SETS)}, not {chosen!r}")
    return {tier: given.get(tier, APP_SETS[0]) for tier in APP_TIERS}


def _group_name(environment: str, region: Mapping[str, Any], tier: str, chosen: str) -> str:
    return _check_name("group", f"{environment}-{region['short']}-{tier}-{chosen}")


def _autoscaling_policy(config: Mapping[str, Any]) -> dict[str, Any]:
    given = config.get("autoscaling") or {}
    unknown = sorted(set(given) - set(AUTOSCALING))
    if unknown:
        raise GceStateError(f"autoscaling has unknown settings {unknown}")
    policy = {**AUTOSCALING, **given}
    target = policy["cpu_target"]
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
        raise GceStateError(f"autoscaling.cpu_target must be above 0 and below 1, not {target!r}")
    for key in ("cool_down_seconds", "scale_in_max", "scale_in_window_seconds",
                "autoheal_delay_seconds"):  # fmt: skip
        _whole_number(policy[key], f"autoscaling.{key}")
    return policy


def _app_groups(
    config: Mapping[str, Any],
    environment: str,
    project: str,
    regions: list[dict[str, Any]],
    accounts: dict[str, str],
) -> dict[str, Any]:
    """The app tiers' managed instance groups and what they are made from.

    - ``image_builders``: per tier, the instance playbooks/image.yml converges and captures (in
      the primary region, labelled role=builder so the inventory never takes it for a member);
    - ``app_images``: per tier with a recorded release, the golden image made from the builder's
      boot disk (family ``<env>-<tier>``);
    - ``instance_templates``: per region and tier, versioned by the release (a template is
      immutable: a new release is a new template, and rolling it through the group is a
      rollout);
    - ``app_secrets``: per tier and kind (``env``, ``journal``), the Secret Manager secrets its
      instances read at first boot (named in the template's metadata): the service's
      environment, the journal uploaders' client certificate and key; readable by its account
      only;
    - ``app_health_checks``: autohealing's check of the service itself, on its own port;
    - ``instance_group_managers`` and ``autoscalers``: per region and tier with an image.
    """
    images = _app_images(config)
    sets = _app_sets(config)
    policy = _autoscaling_policy(config)
    ports = {**APP_PORTS, **(config.get("app_ports") or {})}
    paths = {**APP_HEALTH_PATHS, **(config.get("app_health_paths") or {})}
    glob = _links(project)["global"]
    primary = next(r for r in regions if r["primary"])
    machine_types = config["machine_types"]
    labels = {"env": environment}
    builders, made, templates, managers, scalers = [], [], [], [], []
    secrets, checks = [], []
    for tier in APP_TIERS:
        zone_link = f"{COMPUTE}/{project}/zones/{primary['zone']}"
        builder = _check_name("builder", f"{environment}-{primary['short']}-{tier}-builder")
        builders.append(
            {
                "name": builder,
                "tier": tier,
                "zone": primary["zone"],
                "machine_type": machine_types[tier],
                # Not the tier's role: until it is captured it serves nobody.
                "labels": {**labels, "role": "builder", "builds": tier, "region": primary["name"]},
                # The tier's tag: the VPC lets it reach what a member of the tier reaches.
                "tags": [tier],
                "network_interfaces": [
                    {"subnetwork": {"selfLink": _subnet_link(project, environment, primary)}}
                ],
                "service_accounts": [{"email": accounts[tier], "scopes": [CLOUD_PLATFORM_SCOPE]}],
                "disks": _instance_disks(config, builder, None, zone_link),
                "deletion_protection": False,
                "boot_disk": f"{zone_link}/disks/{builder}",
                "self_link": f"{zone_link}/instances/{builder}",
            }
        )
        tier_secrets = {}
        for kind in APP_SECRET_KINDS:
            secret = _check_name("secret", f"{environment}-{tier}-{kind}")
            tier_secrets[kind] = f"projects/{project}/secrets/{secret}"
            secrets.append(
                {
                    "tier": tier,
                    "kind": kind,
                    "name": secret,
                    "resource": tier_secrets[kind],
                    "labels": {**labels, "role": tier},
                    "readers": [
                        {"name": accounts[tier], "roles": [SECRET_ACCESSOR_ROLE]},
                    ],
                }
            )
        check = f"{environment}-{tier}-autoheal"
        checks.append(
            {
                "tier": tier,
                "name": check,
                "port": int(ports[tier]),
                "request_path": paths[tier],
                "self_link": f"{glob}/healthChecks/{check}",
            }
        )
        release = images.get(tier)
        if release is None:
            continue
        ref = release_ref(release)
        image = _check_name("image", f"{environment}-{tier}-{ref}")
        made.append(
            {
                "tier": tier,
                "release": release,
                "name": image,
                "family": f"{environment}-{tier}",
                "source_disk": builders[-1]["boot_disk"],
                "labels": {**labels, "role": tier, "release": _label_value(release)},
                "self_link": f"{glob}/images/{image}",
            }
        )
        for region in regions:
            group = _group_name(environment, region, tier, sets[tier])
            region_link = f"{_links(project)['regions']}/{region['name']}"
            properties = {
                "machine_type": machine_types[tier],
                "disks": [
                    {
                        "boot": True,
                        "auto_delete": True,
                        "initialize_params": {
                            "source_image": made[-1]["self_link"],
                            "disk_size_gb": int(config.get("boot_disk_size_gb", 20)),
                        },
                    }
                ],
                # No access config: no external IP, like every instance.
                "network_interfaces": [
                    {"subnetwork": {"selfLink": _subnet_link(project, environment, region)}}
                ],
                "service_accounts": [{"email": accounts[tier], "scopes": [CLOUD_PLATFORM_SCOPE]}],
                "metadata": {
                    "enable-oslogin": "TRUE",
                    # roles/image_boot's first boot reads its secrets from these.
                    **{f"fleetops-{kind}-secret": tier_secrets[kind] for kind in APP_SECRET_KINDS},
                    "fleetops-release": release,
                    **(_data_lbs(project, environment, region, ports) if tier == "info" else {}),
                },
                "labels": {
                    **labels,
                    "role": tier,
                    "region": region["name"],
                    "region_short": region["short"],
                    "release": _label_value(release),
                    # The inventory's app_set_<set> group: an A/B gates the new set.
                    "app_set": sets[tier],
                },
                "tags": {"items": [tier]},
            }
            template = _template_name(group, release, properties)
            templates.append(
                {
                    "name": template,
                    "tier": tier,
                    "set": sets[tier],
                    "region": region["name"],
                    "release": release,
                    "properties": properties,
                    "self_link": f"{glob}/instanceTemplates/{template}",
                }
            )
            size = region["autoscaling"][tier]
            managers.append(
                {
                    "name": group,
                    "tier": tier,
                    "set": sets[tier],
                    "region": region["name"],
                    # Instances <group>-xxxx: HAProxy's servers of the set share this prefix.
                    "base_instance_name": group,
                    "instance_template": templates[-1]["self_link"],
                    # At creation only: then the autoscaler owns the size.
                    "target_size": size["min"],
                    "named_ports": [{"name": tier, "port": int(ports[tier])}],
                    "auto_healing_policies": [
                        {
                            "health_check": checks[-1]["self_link"],
                            "initial_delay_sec": policy["autoheal_delay_seconds"],
                        }
                    ],
                    "self_link": f"{region_link}/instanceGroupManagers/{group}",
                }
            )
            scalers.append(
                {
                    "name": group,
                    "tier": tier,
                    "region": region["name"],
                    "target": managers[-1]["self_link"],
                    "autoscaling_policy": _scaler_policy(policy, size),
                }
            )
    return {
        "image_builders": builders,
        "app_images": made,
        "instance_templates": templates,
        "app_secrets": secrets,
        "app_health_checks": checks,
        "instance_group_managers": managers,
        "autoscalers": scalers,
        # Provisioning a new environment: these tiers have no image yet (playbooks/image.yml).
        "app_tiers_without_image": [t for t in APP_TIERS if t not in images],
        "app_sets": sets,
        # What tearing down looks for, whatever release each group runs: every region's groups
        # of both sets (and their autoscalers, of the same name), and the templates of any
        # release (RE2, matching the whole name, as the Compute API's `eq` filters do).
        "app_group_names": [
            {
                "name": _group_name(environment, region, tier, chosen),
                "tier": tier,
                "set": chosen,
                "region": region["name"],
                "target": f"{_links(project)['regions']}/{region['name']}/instanceGroupManagers/"
                f"{_group_name(environment, region, tier, chosen)}",
                "autoscaling_policy": _scaler_policy(policy, region["autoscaling"][tier]),
            }
            for tier in APP_TIERS
            for region in regions
            for chosen in APP_SETS
        ],
        "app_template_pattern": (
            f"{environment}-({'|'.join(r['short'] for r in regions)})-({'|'.join(APP_TIERS)})-.*"
        ),
    }


def _data_lbs(
    project: str, environment: str, region: Mapping[str, Any], ports: Mapping[str, Any]
) -> dict[str, str]:
    """Where an info instance of ``region`` reaches data: its region's lbs by internal DNS name
    (their addresses are the API's to choose), resolved by the instance's first boot, which
    spreads the group's instances over them (roles/image_boot)."""
    zone = region["zone"]
    names = [
        f"{instance_name(environment, region['short'], 'lb', n)}.{zone}.c.{project}.internal"
        for n in range(1, region["counts"]["lb"] + 1)
    ]
    return {"fleetops-data-lbs": ",".join(names), "fleetops-data-port": str(ports["data"])}


def _scaler_policy(policy: Mapping[str, Any], size: Mapping[str, int]) -> dict[str, Any]:
    """The autoscaler's policy for a group of ``size`` (min, max). On CPU: the app tiers are
    CPU-bound (make bench), and the global LB's utilisation would measure HAProxy, which
    fronts them, not the groups."""
    return {
        "min_num_replicas": size["min"],
        "max_num_replicas": size["max"],
        "cool_down_period_sec": policy["cool_down_seconds"],
        "mode": "ON",
        "cpu_utilization": {"utilization_target": float(policy["cpu_target"])},
        "scale_in_control": {
            "max_scaled_in_replicas": {"fixed": policy["scale_in_max"]},
            "time_window_sec": policy["scale_in_window_seconds"],
        },
    }


def _subnet_link(project: str, environment: str, region: Mapping[str, Any]) -> str:
    return (
        f"{_links(project)['regions']}/{region['name']}/subnetworks/{environment}-{region['short']}"
    )


def _load_balancer(
    environment: str,
    project: str,
    regions: list[dict[str, Any]],
    instances: list[dict[str, Any]],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """One global external HTTPS LB; its backends are every region's HAProxy instances."""
    glob = _links(project)["global"]
    groups = []
    for region in regions:
        name = f"{environment}-{region['short']}-lb"
        groups.append(
            {
                "name": name,
                "zone": region["zone"],
                "region": region["name"],
                "instances": [
                    {"selfLink": i["self_link"]}
                    for i in instances
                    if i["tier"] == "lb" and i["region"] == region["name"]
                ],
                # The LB speaks HTTPS to HAProxy (re-encrypted inside Google's network).
                "named_ports": [{"name": "https", "port": 443}],
                "self_link": f"{COMPUTE}/{project}/zones/{region['zone']}/instanceGroups/{name}",
            }
        )
    web = f"{environment}-web"
    health_check = {
        "name": f"{environment}-lb-health",
        "port": 443,
        # Through HAProxy to info: a region whose info tier is down is taken out as a whole.
        "request_path": config.get("health_check_path", "/_health"),
        "self_link": f"{glob}/healthChecks/{environment}-lb-health",
    }
    capacity = _region_capacity(config, regions)
    max_rate = _whole_number(
        config.get("lb_max_rate_per_instance", LB_MAX_RATE_PER_INSTANCE),
        "lb_max_rate_per_instance (requests/s)",
    )
    backend = {
        "name": web,
        "protocol": "HTTPS",
        "port_name": "https",
        "timeout_sec": 30,
        "draining_timeout_sec": 30,
        "health_checks": [health_check["self_link"]],
        # RATE: a region takes requests up to its HAProxy instances' rate, and a client goes to
        # the nearest region that has capacity left (the rest spill over to the next nearest).
        # HAProxy's CPU says nothing of the app tiers behind it, so UTILIZATION would not.
        "backends": [
            {
                "group": g["self_link"],
                "balancing_mode": "RATE",
                "max_rate_per_instance": float(max_rate),
                "capacity_scaler": capacity[g["region"]],
            }
            for g in groups
        ],
        "self_link": f"{glob}/backendServices/{web}",
    }
    redirect = bool(config.get("redirect_https", True))
    url_maps = [
        {
            "name": web,
            "default_service": backend["self_link"],
            "https_redirect": False,
            "self_link": f"{glob}/urlMaps/{web}",
        }
    ]
    if redirect:
        url_maps.append(
            {
                "name": f"{web}-redirect",
                "default_service": None,
                "https_redirect": True,
                "self_link": f"{glob}/urlMaps/{web}-redirect",
            }
        )
    http_map = url_maps[-1]["self_link"]
    certificate = {"name": f"{web}-cert", "self_link": f"{glob}/sslCertificates/{web}-cert"}
    https_proxy = {
        "name": f"{web}-https",
        "url_map": url_maps[0]["self_link"],
        "ssl_certificates": [certificate["self_link"]],
        "self_link": f"{glob}/targetHttpsProxies/{web}-https",
    }
    http_proxy = {
        "name": f"{web}-http",
        "url_map": http_map,
        "self_link": f"{glob}/targetHttpProxies/{web}-http",
    }
    return {
        "instance_groups": groups,
        "health_checks": [health_check],
        "backend_services": [backend],
        "url_maps": url_maps,
        "ssl_certificates": [certificate],
        "target_https_proxies": [https_proxy],
        "target_http_proxies": [http_proxy],
        "forwarding_rules": [
            {
                "name": f"{web}-https",
                "port_range": "443-443",
                "target": https_proxy["self_link"],
                "address": f"{web}-ip",
            },
            {
                "name": f"{web}-http",
                "port_range": "80-80",
                "target": http_proxy["self_link"],
                "address": f"{web}-ip",
            },
        ],
    }


def _region_capacity(config: Mapping[str, Any], regions: list[dict[str, Any]]) -> dict[str, float]:
    """Each region's capacity scaler for the global LB: 1.0, or what ``region_capacity`` sets
    (0.0 drains a region: no new requests reach it; playbooks/region_capacity.yml)."""
    names = [r["name"] for r in regions]
    given = config.get("region_capacity") or {}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise GceStateError(f"region_capacity names regions this environment lacks: {unknown}")
    capacity = {}
    for name in names:
        value = given.get(name, 1.0)
        try:
            scaler = float(value)
        except (TypeError, ValueError):
            scaler = -1.0
        if isinstance(value, bool) or not 0.0 <= scaler <= 1.0:
            raise GceStateError(f"region_capacity of {name} must be from 0.0 to 1.0, not {value!r}")
        capacity[name] = scaler
    if not any(capacity.values()):
        raise GceStateError("region_capacity drains every region: nothing would serve the users")
    return capacity


def _positive_days(config: Mapping[str, Any], key: str, default: int) -> int:
    return _whole_number(config.get(key, default), key)


def _backups(
    config: Mapping[str, Any],
    environment: str,
    regions: list[dict[str, Any]],
    accounts: dict[str, str],
) -> dict[str, Any]:
    """Where backups go besides the db host: a bucket for the dumps, snapshots of the disks.

    One daily snapshot schedule per region and data-disk tier present there: db's and
    monitoring's are apart so that each snapshot is labelled with the tier it holds (the
    schedule sets the labels), and a tier added to a region never touches another's schedule.

    The bucket keeps every version of every dump: an overwritten or deleted backup stays as a
    noncurrent version, and lifecycle rules, not people, remove what is older than the
    retention. (A locked retention policy would forbid versioning on the same bucket; GCS
    offers one or the other.) It lives in the primary region, beside the primary db.
    """
    bucket = config.get("backup_bucket") or ""
    if not BUCKET_RE.match(bucket) or "google" in bucket or bucket.startswith("goog"):
        raise GceStateError(
            f"backup bucket name {bucket!r} is not a valid Cloud Storage bucket name"
            " (3-63 of a-z 0-9 - _, no 'goog' prefix, no 'google')"
        )
    retention = _positive_days(config, "backup_retention_days", 30)
    snapshot_days = _positive_days(config, "snapshot_retention_days", 14)
    primary = next(r for r in regions if r["primary"])
    labels = {"env": environment, "data": "true"}
    project = config["project"]
    policies = [
        {
            "name": snapshot_policy_name(environment, r["short"], tier),
            "tier": tier,
            "region": r["name"],
            "start_time": SNAPSHOT_START_TIME,
            "retention_days": snapshot_days,
            # Snapshots outlive their disk: a deleted disk's history is still there to restore.
            "on_source_disk_delete": "KEEP_AUTO_SNAPSHOTS",
            "labels": {**labels, "role": tier},
            "self_link": f"{_links(project)['regions']}/{r['name']}/resourcePolicies/"
            f"{snapshot_policy_name(environment, r['short'], tier)}",
        }
        for r in regions
        for tier in DATA_DISK_TIERS
        if r["counts"][tier]
    ]
    return {
        "backup_bucket": {
            "name": bucket,
            # The API reports locations in upper case; the module compares them as given.
            "location": primary["name"].upper(),
            "storage_class": "STANDARD",
            "versioning": True,
            "uniform_bucket_level_access": True,
            "public_access_prevention": "enforced",
            "retention_days": retention,
            "lifecycle_rules": [
                # A dump older than the retention becomes noncurrent...
                {"action": {"type": "Delete"}, "condition": {"age_days": retention}},
                # ...and a noncurrent version (aged out, overwritten or deleted) goes after as long
                # again, so a mistaken deletion can be undone for that long.
                {
                    "action": {"type": "Delete"},
                    "condition": {"days_since_noncurrent_time": retention, "is_live": False},
                },
            ],
            "labels": labels,
            # Only the db hosts write to it, and only new objects.
            "writers": [{"name": accounts["db"], "roles": [BACKUP_WRITER_ROLE]}],
        },
        "snapshot_policies": policies,
    }


def gce_desired_state(config: Mapping[str, Any]) -> dict[str, Any]:
    """Everything one environment creates, as lists of module-shaped dicts.

    ``config`` keys: ``project``, ``environment``, ``regions`` (name, zone, subnet_cidr,
    counts per tier, optional primary/short), ``machine_types`` per tier, ``admin_cidrs``,
    ``iap_ssh``, ``firewall_policy`` (``hardening_firewall_policy``'s format),
    ``backup_bucket`` and optional disk, image, health check, redirect and retention settings
    (see defaults/main.yml).
    """
    project = config.get("project") or ""
    if not re.match(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$", project):
        raise GceStateError(f"project {project!r} is not a GCP project id")
    environment = config.get("environment") or ""
    if environment in LOCAL_ENVIRONMENTS or not re.match(r"^[a-z][a-z0-9]{1,9}$", environment):
        raise GceStateError(f"environment {environment!r}: a short lowercase cloud environment")
    regions = _regions(config)
    _check_counts(environment, regions)
    controller = _controller_ranges(config)
    network_name = _check_name("network", f"{environment}-vpc")
    network_link = f"{_links(project)['global']}/networks/{network_name}"

    accounts = _service_accounts(environment, project)
    emails = {a["tier"]: a["name"] for a in accounts}
    instances, disks = _instances_and_disks(config, environment, regions, emails)
    return {
        "project": project,
        "environment": environment,
        "network": {"name": network_name, "self_link": network_link},
        "subnets": [
            {
                "name": f"{environment}-{r['short']}",
                "region": r["name"],
                "ip_cidr_range": str(r["subnet"]),
                "network": network_link,
            }
            for r in regions
        ],
        "routers": [
            {
                "name": f"{environment}-{r['short']}-router",
                "region": r["name"],
                "network": network_link,
                "nat": f"{environment}-{r['short']}-nat",
            }
            for r in regions
        ],
        "firewalls": _firewalls(
            environment, network_link, config.get("firewall_policy") or [], controller
        ),
        "controller_ranges": controller,
        "service_accounts": accounts,
        "disks": disks,
        "instances": instances,
        "addresses": [
            {"name": f"{environment}-web-ip", "scope": "global", "address_type": "EXTERNAL"}
        ],
        **_load_balancer(environment, project, regions, instances, config),
        **_app_groups(config, environment, project, regions, emails),
        **_backups(config, environment, regions, emails),
    }


def gce_missing_bindings(
    iam_policy: Mapping[str, Any], service_accounts: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """The (role, member) pairs the project's IAM policy still lacks, so re-runs add nothing."""
    have = {
        (binding["role"], member)
        for binding in iam_policy.get("bindings") or []
        if not binding.get("condition")
        for member in binding.get("members") or []
    }
    return [
        {"role": role, "member": f"serviceAccount:{account['name']}"}
        for account in service_accounts
        for role in account["roles"]
        if (role, f"serviceAccount:{account['name']}") not in have
    ]


def gce_secret_bindings(results: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The bindings each secret still lacks, from a loop of ``gcloud secrets get-iam-policy``
    over the secrets (registered: each result's ``item`` the secret, ``stdout`` its policy)."""
    return [
        {"secret": result["item"]["name"], **binding}
        for result in results
        for binding in gce_missing_bindings(
            json.loads(result["stdout"] or "{}"), result["item"]["readers"]
        )
    ]


def _basename(url: str) -> str:
    return str(url).rstrip("/").rsplit("/", 1)[-1]


def gce_prune(
    images: Sequence[Mapping[str, Any]],
    templates: Sequence[Mapping[str, Any]],
    groups: Sequence[Mapping[str, Any]],
    desired: Mapping[str, Any],
    kept: int = 2,
) -> dict[str, list[str]]:
    """What captures and rollouts left behind, to delete: ``templates`` no group uses (nor the
    desired state), then ``images`` beyond each tier's newest ``kept`` that neither the desired
    state nor a remaining template names. Inputs: the environment's golden images, the app
    tiers' templates and the app groups, as the info modules list them (camelCase)."""
    if int(kept) < 1:
        raise GceStateError(f"images_kept must be at least 1 (the release that runs), not {kept}")
    used = {t["name"] for t in desired.get("instance_templates", [])}
    for group in groups:
        used.add(_basename(group.get("instanceTemplate", "")))
        used |= {_basename(v.get("instanceTemplate", "")) for v in group.get("versions") or []}
    stale_templates = sorted(t["name"] for t in templates if t["name"] not in used)
    keep_images = {i["name"] for i in desired.get("app_images", [])}
    for template in templates:
        if template["name"] in stale_templates:
            continue
        for disk in (template.get("properties") or {}).get("disks") or []:
            source = (disk.get("initializeParams") or {}).get("sourceImage")
            if source:
                keep_images.add(_basename(source))
    by_tier: dict[str, list[Mapping[str, Any]]] = {}
    for image in images:
        tier = (image.get("labels") or {}).get("role")
        if tier in APP_TIERS:
            by_tier.setdefault(tier, []).append(image)
    stale_images = []
    for tier_images in by_tier.values():
        newest = sorted(tier_images, key=lambda i: i.get("creationTimestamp", ""), reverse=True)
        keep_images |= {i["name"] for i in newest[: int(kept)]}
        stale_images += [i["name"] for i in newest if i["name"] not in keep_images]
    return {"templates": stale_templates, "images": sorted(stale_images)}


# --- what exists (lookups' results) -------------------------------------------------------

# gcloud's own message when the router exists but has no NAT of that name
# (`nats describe`/`nats delete`), and the API's 404 when the router itself does not exist.
_NAT_NOT_FOUND = "NAT `{nat}` not found"
_ROUTER_NOT_FOUND = r"The resource '[^']*/routers/{router}' was not found"


def gcloud_nat_outcome(rc: int, stderr: str, nat: str, router: str) -> str:
    """``ok``, ``not_found`` or ``error`` for one `gcloud compute routers nats` call.

    Only a NAT (or its router) that does not exist is ``not_found``. Everything else, such as
    expired credentials, a missing permission, a wrong project (also a 404, of the project),
    quota, is ``error``: taking those for "missing" would create a NAT that may exist, or
    report a deletion that did not happen.
    """
    if rc == 0:
        return "ok"
    if nat and _NAT_NOT_FOUND.format(nat=nat) in stderr:
        return "not_found"
    if router and re.search(_ROUTER_NOT_FOUND.format(router=re.escape(router)), stderr):
        return "not_found"
    return "error"


def gce_nat_outcome(result: Mapping[str, Any]) -> str:
    """:func:`gcloud_nat_outcome` of a registered loop item over ``gce_infra_desired.routers``."""
    router = result.get("item") or {}
    return gcloud_nat_outcome(
        int(result.get("rc", -1)),
        str(result.get("stderr") or result.get("msg") or ""),
        str(router.get("nat", "")),
        str(router.get("name", "")),
    )


def gce_nats_to_create(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The routers whose NAT the lookup found missing; any other failure stops the run.

    A skipped lookup (another state, plan only) found nothing missing: Ansible evaluates a
    task's loop before its condition, so this runs even when the creating task is skipped.
    """
    missing = []
    for result in results:
        if result.get("skipped"):
            continue
        outcome = gce_nat_outcome(result)
        if outcome == "error":
            raise GceStateError(
                f"could not tell whether Cloud NAT {result.get('item', {}).get('nat')!r} exists:"
                f" {(result.get('stderr') or result.get('msg') or '').strip()}"
            )
        if outcome == "not_found":
            missing.append(dict(result["item"]))
    return missing


def _resource_path(link: str) -> str:
    """``.../projects/p/regions/r/resourcePolicies/n`` -> ``projects/p/regions/r/...``: the API
    may answer with ``compute/v1`` or ``compute/beta`` URLs for the same resource."""
    return link[link.index("projects/") :] if "projects/" in link else link


def gce_disks_without_snapshots(
    disks: Sequence[Mapping[str, Any]], lookups: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The desired data disks that lack their snapshot schedule.

    ``lookups`` are the disk lookup's registered results, one per disk, each with the
    API-shaped disks it found (``resources``, with ``resourcePolicies`` URLs); a disk not found
    was created by this run, with no schedule yet. Skipped lookups (another state, plan only)
    found nothing.
    """
    found = [
        disk
        for lookup in lookups
        if not lookup.get("skipped")
        for disk in lookup.get("resources") or []
    ]
    attached = {
        disk["name"]: {_resource_path(p) for p in disk.get("resourcePolicies") or []}
        for disk in found
    }
    return [
        dict(disk)
        for disk in disks
        if _resource_path(disk["snapshot_policy"]) not in attached.get(disk["name"], set())
    ]


def gce_groups_on_another_template(lookups: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The desired groups that exist but make instances from another template than theirs.

    ``lookups`` are the group lookup's registered results, one per desired group (``item``),
    each with the API-shaped groups it found (``resources``, with ``instanceTemplate`` URLs).
    A group not found is created with its template; skipped lookups found nothing.
    """
    stale = []
    for lookup in lookups:
        if lookup.get("skipped"):
            continue
        for found in lookup.get("resources") or []:
            have = _resource_path(str(found.get("instanceTemplate") or ""))
            if have != _resource_path(lookup["item"]["instance_template"]):
                stale.append(dict(lookup["item"]))
    return stale


def gce_set_up_groups(
    managers: Sequence[Mapping[str, Any]], lookups: Sequence[Mapping[str, Any]], tier: str
) -> list[dict[str, Any]]:
    """An A/B's new set: ``tier``'s desired groups (``managers``, of the set being brought up),
    each at the size its region's serving group has now, so the switch moves the load to as
    many instances as served it (the new set gets its autoscaler only once it serves).

    ``lookups``: the serving set's group lookups (``item``: an ``app_group_names`` entry;
    ``resources``: the groups found, API-shaped, with ``targetSize``). Raises when a region's
    serving group is missing or empty: there is nothing to replace, or nothing to size from.
    """
    sizes: dict[str, int] = {}
    for lookup in lookups:
        item = lookup["item"]
        if item["tier"] != tier:
            continue
        found = lookup.get("resources") or []
        size = int(found[0].get("targetSize") or 0) if found else 0
        if size < 1:
            raise GceStateError(
                f"no serving {tier} group {item['name']} in {item['region']} to replace"
                + (" (it has no instance)" if found else "")
            )
        sizes[item["region"]] = size
    new = [dict(m) for m in managers if m["tier"] == tier]
    if not new:
        raise GceStateError(f"{tier} has no groups (no golden image recorded)")
    for group in new:
        if group["region"] not in sizes:
            raise GceStateError(f"no serving {tier} group in {group['region']} was looked up")
        group["target_size"] = sizes[group["region"]]
    return new


class FilterModule:
    """Ansible entry point: ``{{ gce_infra_config | gce_desired_state }}``."""

    def filters(self) -> dict[str, Any]:
        return {
            "gce_desired_state": gce_desired_state,
            "gce_instance_name": instance_name,
            "gce_missing_bindings": gce_missing_bindings,
            "gce_secret_bindings": gce_secret_bindings,
            "gce_prune": gce_prune,
            "gce_nat_outcome": gce_nat_outcome,
            "gce_nats_to_create": gce_nats_to_create,
            "gce_disks_without_snapshots": gce_disks_without_snapshots,
            "gce_groups_on_another_template": gce_groups_on_another_template,
            "gce_set_up_groups": gce_set_up_groups,
        }
