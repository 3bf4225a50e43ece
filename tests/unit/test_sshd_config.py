"""A main sshd_config written by the earlier hardening role goes back to the distribution's file,
with the platform's blocks kept where the platform's agent puts them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, load_module

sc = load_module("roles/hardening/filter_plugins/sshd_config.py")
MARKERS = yaml.safe_load((ROOT / "roles/hardening/defaults/main.yml").read_text())[
    "hardening_ssh_platform_blocks"
]
# What the earlier role wrote with its defaults (Molecule's prepare also installs it).
OLD_ROLE = (ROOT / "molecule/hardening/files/old-role-sshd_config").read_text()
# The start of Debian 12's /usr/share/openssh/sshd_config, enough to tell it apart.
DEBIAN = (
    "\n# This is the sshd server system-wide configuration file.  See\n"
    "# sshd_config(5) for more information.\n\n"
    "Include /etc/ssh/sshd_config.d/*.conf\n\n"
    "KbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\n"
    "AcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n"
)
# google-guest-agent's OS Login block, as it prepends it (updateSSHConfig).
OS_LOGIN = (
    "#### Google OS Login control. Do not edit this section. ####\n"
    "AuthorizedKeysCommand /usr/bin/google_authorized_keys\n"
    "AuthorizedKeysCommandUser root\n"
    "Include /var/google-users.d/*\n"
    "Match all\n"
    "#### End Google OS Login control section. ####\n"
)
# ... and the block it appends when two-factor authentication is on.
OS_LOGIN_2FA_MATCH = (
    "#### Google OS Login control. Do not edit this section. ####\n"
    "Match User sa_*\n"
    "       AuthenticationMethods publickey\n"
    "#### End Google OS Login control section. ####\n"
)
LOCAL = (
    "#### fleetops platform keys. Do not edit this section. ####\n"
    "AuthorizedKeysCommand /usr/lib/fleetops-platform/authorized-keys %u\n"
    "AuthorizedKeysCommandUser nobody\n"
    "#### End fleetops platform keys section. ####\n"
)


def test_the_old_roles_file_is_recognised_and_the_distributions_is_not():
    assert sc.written_by_old_role(OLD_ROLE)
    assert sc.written_by_old_role(OS_LOGIN + OLD_ROLE)
    assert not sc.written_by_old_role(DEBIAN)
    assert not sc.written_by_old_role(OS_LOGIN + DEBIAN)


def test_the_os_login_block_the_agent_prepended_stays_on_top():
    restored = sc.restored_main(OS_LOGIN + OLD_ROLE, DEBIAN, MARKERS)
    assert restored == OS_LOGIN + DEBIAN


def test_a_two_factor_match_block_stays_last():
    current = OS_LOGIN + OLD_ROLE + OS_LOGIN_2FA_MATCH
    assert sc.restored_main(current, DEBIAN, MARKERS) == OS_LOGIN + DEBIAN + OS_LOGIN_2FA_MATCH


def test_the_local_stand_in_block_is_kept_byte_for_byte():
    assert sc.restored_main(LOCAL + OLD_ROLE, DEBIAN, MARKERS) == LOCAL + DEBIAN


def test_without_a_platform_block_the_distributions_file_comes_back_as_it_is():
    assert sc.restored_main(OLD_ROLE, DEBIAN, MARKERS) == DEBIAN


def test_a_block_without_its_final_newline_gets_one():
    current = OLD_ROLE + OS_LOGIN_2FA_MATCH.rstrip("\n")
    assert sc.restored_main(current, DEBIAN, MARKERS) == DEBIAN + OS_LOGIN_2FA_MATCH


def test_the_restored_file_keeps_its_blocks_when_read_again():
    once = sc.restored_main(OS_LOGIN + OLD_ROLE + OS_LOGIN_2FA_MATCH, DEBIAN, MARKERS)
    assert sc.platform_blocks(once, MARKERS) == ([OS_LOGIN], [OS_LOGIN_2FA_MATCH])


def test_a_block_that_never_ends_is_refused_rather_than_guessed():
    unterminated = OS_LOGIN.splitlines(keepends=True)[0] + "AuthorizedKeysCommandUser root\n"
    with pytest.raises(sc.SshdConfigError, match="no end line"):
        sc.restored_main(unterminated + OLD_ROLE, DEBIAN, MARKERS)


def test_the_image_writes_the_block_the_role_keeps():
    # scripts/build-image.sh and the role's default markers must name the same lines.
    script = Path(ROOT / "scripts/build-image.sh").read_text()
    for line in LOCAL.splitlines():
        assert f"'{line}'" in script
