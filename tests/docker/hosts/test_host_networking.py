"""The worker-host engines of ``tests/hosts.py`` leave the host's networking alone: each has a
bridge of its own (never ``--bridge=none``, which deletes the machine's ``docker0``), stale bridges
of a crashed run are removed at the start, and the comparison of the host's interfaces before and
after says what changed (``tests/networking.py``). (The comparison itself runs at the teardown
of ``worker_daemons``; what it says: tests/unit/test_host_networking.py.)"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest

from tests.networking import (
    BRIDGE_PREFIX,
    IP,
    host_networking,
    remove_stale_bridges,
)


def _link(name: str) -> dict | None:
    result = subprocess.run([IP, "-j", "addr", "show", "dev", name], capture_output=True, text=True)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def test_every_engine_has_its_own_bridge_and_docker0_stays(worker_daemons):
    subnets = set()
    for d in worker_daemons:
        client = d.client()
        try:
            network = client.networks.get("bridge").attrs
        finally:
            client.close()
        assert network["Options"]["com.docker.network.bridge.name"] == d.bridge
        assert [c["Subnet"] for c in network["IPAM"]["Config"]] == [d.subnet]
        assert network["Options"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"
        link = _link(d.bridge)
        assert link is not None, f"{d.bridge} is missing"
        gateway = next(ipaddress.ip_network(d.subnet).hosts())
        assert f"{gateway}" in [a["local"] for a in link["addr_info"]]
        subnets.add(d.subnet)
    assert len(subnets) == len(list(worker_daemons))
    # The machine engine's bridge (if this machine has one) is there, with its address.
    machine = host_networking().get("docker0")
    if machine is not None:
        assert machine["addresses"], machine
        assert not any(ipaddress.ip_network(s).overlaps(_net(machine)) for s in subnets)


def _net(link: dict) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(next(a for a in link["addresses"] if ":" not in a), strict=False)


def test_stale_bridges_go_and_live_ones_stay(worker_daemons):
    if os.geteuid() != 0:
        pytest.skip("creating a bridge needs root")
    stale = BRIDGE_PREFIX + "stale"
    subprocess.run([IP, "link", "add", "name", stale, "type", "bridge"], check=True)
    try:
        assert remove_stale_bridges() == [stale]
        assert _link(stale) is None
        for d in worker_daemons:  # named by their running dockerd: kept
            assert _link(d.bridge) is not None, f"{d.bridge} was removed"
    finally:
        subprocess.run([IP, "link", "delete", "dev", stale], capture_output=True)
