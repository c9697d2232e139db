"""What the comparison of the host's networking (``tests/networking.py``) before and after the
worker-host engines of ``tests/hosts.py`` says, pure logic (the engines themselves leave it alone:
tests/docker/hosts/test_host_networking.py)."""

from __future__ import annotations

from tests.networking import networking_changes


def test_changes_name_what_differs():
    before = {
        "docker0": {"index": 5, "up": True, "addresses": ["172.17.0.1/16"]},
        "eth0": {"index": 4, "up": True, "addresses": ["192.0.2.2/24"]},
        "route 172.17.0.0/16 dev docker0": {"prefsrc": "172.17.0.1", "scope": "link"},
    }
    after = {
        "eth0": {"index": 4, "up": False, "addresses": ["192.0.2.2/24"]},
        "br-bd-w1": {"index": 9, "up": True, "addresses": ["10.213.1.1/24"]},
    }
    changes = networking_changes(before, after)
    assert changes == [
        "br-bd-w1: new ({'index': 9, 'up': True, 'addresses': ['10.213.1.1/24']})",
        "docker0: gone (was {'index': 5, 'up': True, 'addresses': ['172.17.0.1/16']})",
        "eth0: up True -> False",
        "route 172.17.0.0/16 dev docker0: gone (was {'prefsrc': '172.17.0.1', 'scope': 'link'})",
    ]
    assert networking_changes(before, before) == []
