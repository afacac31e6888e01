"""The packet filters' decisions that need no engine: where they cannot be set, and which resolvers stay open."""

from __future__ import annotations

from pathlib import Path

from server.core.config import ServerConfig
from server.hands.docker.packet_filter import Bridge, PacketFilter, host_resolvers
from server.services.doctor import check_egress


def test_without_iptables_nothing_is_applied_and_the_state_says_why() -> None:
    packet_filter = PacketFilter("store-without-iptables", iptables=None)
    assert packet_filter.why_not() == "iptables is not installed on the server's machine"
    state = packet_filter.apply(Bridge("msl-x", "172.30.0.1"), Bridge("mso-x", "172.31.0.1"), 3128,
                                allow_private=False, resolvers=[])  # fmt: skip
    assert not state.enforced
    assert state.detail == "not enforced: iptables is not installed on the server's machine"


def test_dns_stays_open_to_the_resolvers_docker_forwards_to(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nnameserver 10.0.0.53\nnameserver fd00::53\noptions ndots:0\nnameserver 192.0.2.53\n")
    assert host_resolvers(str(conf)) == ["10.0.0.53", "192.0.2.53"]
    assert host_resolvers(str(tmp_path / "missing")) == []


def test_doctor_says_what_the_private_address_opt_in_opens(tmp_path: Path) -> None:
    check = check_egress(ServerConfig(data_dir=tmp_path, egress_allow_private=True))
    assert check.level == "warn"
    assert "MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE=1" in check.detail
    assert "unset it" in check.fix
