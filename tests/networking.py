"""The host's networking around the worker-host engines of ``hosts.py``.

Each engine has a default bridge of its own, ``br-bd-wN`` (``BRIDGE_PREFIX``), created by
``hosts.py`` with an address from ``10.213.0.0/16`` (``BRIDGE_RANGE``) that nothing on the machine
uses (``free_subnets``), and no iptables rules, IP forwarding or masquerading (sandboxes use
``network_mode: none``; a container on such an engine's default network would reach only that
bridge). Not ``--bridge=none``: a dockerd started with it deletes the machine's ``docker0`` (moby
``removeDefaultBridgeInterface``), which breaks the machine engine's default network until it
restarts. Stale bridges of a crashed run (``br-bd-*`` that no running dockerd names) are removed at
the start (``remove_stale_bridges``). The host's interfaces, addresses and routes are compared
before and after (``host_networking``, ``check_networking_unchanged``): a difference fails the
session's teardown.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path

IP = shutil.which("ip") or "/usr/sbin/ip"
BRIDGE_PREFIX = "br-bd-"  # the engines' bridges: br-bd-w1, ... (interface names: 15 bytes at most)
BRIDGE_RANGE = ipaddress.ip_network("10.213.0.0/16")  # their /24s; not in Docker's default pools


def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``ip <args>`` (iproute2); RuntimeError with its stderr if it fails and ``check``."""
    result = subprocess.run([IP, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _ip_json(*args: str) -> list:
    return json.loads(run_ip("-j", *args).stdout or "[]")


# Interfaces that come and go with the machine engine's containers and user-defined networks (other
# people's work on this machine, not the extra engines'): left out of the comparison.
_CHURN = re.compile(r"veth[0-9a-f]+|br-[0-9a-f]{12}")


def host_networking() -> dict:
    """The host's interfaces and IPv4 main-table routes: {interface name: its index, type, MAC
    address, administrative state (UP or not), bridge master, IPv4 and global IPv6 addresses} and
    {"route <dst> dev <interface>": gateway, source, scope, metric}. Left out: counters, carrier
    and operational state (docker0 has carrier while a container is attached), kernel-made IPv6
    link-local addresses, and the machine engine's veth and ``br-<network id>`` interfaces."""
    found = {}
    for link in _ip_json("addr", "show"):
        name = link["ifname"]
        if _CHURN.fullmatch(name):
            continue
        addresses = sorted(
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", [])
            if not (a["family"] == "inet6" and a.get("scope") == "link")
        )
        found[name] = {
            "index": link["ifindex"],
            "type": link.get("link_type"),
            "mac": link.get("address"),
            "up": "UP" in link.get("flags", []),
            "master": link.get("master"),
            "addresses": addresses,
        }
    for route in _ip_json("route", "show", "table", "main"):
        if _CHURN.fullmatch(route.get("dev", "")):
            continue
        found[f"route {route['dst']} dev {route.get('dev')}"] = {
            k: route.get(k) for k in ("gateway", "prefsrc", "scope", "metric") if route.get(k)
        }
    return found


def networking_changes(before: dict, after: dict) -> list[str]:
    """What differs between two ``host_networking()`` snapshots, one line per item."""
    lines = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        if now is None:
            lines.append(f"{name}: gone (was {was})")
        elif was is None:
            lines.append(f"{name}: new ({now})")
        else:
            diffs = ", ".join(
                f"{k} {was.get(k)!r} -> {now.get(k)!r}"
                for k in sorted(was.keys() | now.keys())
                if was.get(k) != now.get(k)
            )
            lines.append(f"{name}: {diffs}")
    return lines


def docker0_exists() -> bool:
    """Whether the machine engine's default bridge is there (a dockerd started with
    ``--bridge=none`` deletes it)."""
    return run_ip("link", "show", "dev", "docker0", check=False).returncode == 0


def check_networking_unchanged(before: dict, docker0_before: bool) -> None:
    """Fail if the host's networking differs from ``before`` (see ``host_networking``)."""
    problems = networking_changes(before, host_networking())
    if docker0_before and not docker0_exists():
        problems.insert(
            0,
            "`ip link show docker0` fails: the machine engine's default network is broken until "
            "its dockerd restarts",
        )
    if problems:
        raise AssertionError(
            "the worker-host engines changed the host's networking:\n  " + "\n  ".join(problems)
        )


def _bridges_in_use() -> set[str]:
    """The bridges named by ``--bridge=`` in the command line of a running process."""
    names = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # the process is gone
        for arg in args:
            if arg.startswith(b"--bridge="):
                names.add(arg[len(b"--bridge=") :].decode(errors="replace"))
    return names


def remove_stale_bridges() -> list[str]:
    """Delete the ``br-bd-*`` bridges that no running dockerd uses (left by a run that crashed
    before its teardown). Returns their names."""
    in_use = _bridges_in_use()
    stale = [
        link["ifname"]
        for link in _ip_json("link", "show", "type", "bridge")
        if link["ifname"].startswith(BRIDGE_PREFIX) and link["ifname"] not in in_use
    ]
    for name in stale:
        run_ip("link", "delete", "dev", name, "type", "bridge")
    return stale


def free_subnets(count: int) -> list[str]:
    """``count`` /24s of ``BRIDGE_RANGE`` that overlap no address or route of the host."""
    taken = [
        ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
        for link in _ip_json("-4", "addr", "show")
        for a in link.get("addr_info", [])
    ]
    taken += [
        ipaddress.ip_network(r["dst"], strict=False)
        for r in _ip_json("-4", "route", "show", "table", "all")
        if r.get("dst") not in (None, "default")
    ]
    free = [
        str(net)
        for net in list(BRIDGE_RANGE.subnets(new_prefix=24))[1:]
        if not any(net.overlaps(t) for t in taken)
    ]
    if len(free) < count:
        raise RuntimeError(f"no {count} free /24s in {BRIDGE_RANGE} for the engines' bridges")
    return free[:count]
