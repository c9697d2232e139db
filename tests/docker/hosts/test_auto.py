"""The default sandbox kind, ``auto``: nested sandboxes where the worker host's kernel lets a
runner make user namespaces (this machine), containers where it does not -- simulated with a
runner seccomp profile that refuses new namespaces (``clone`` and ``unshare`` with their
flags) on one host (the machine's own sysctls stay as
they are). The choice is made per host and language, with its reason, and shown in
``GET /braindrill/workers``."""

from __future__ import annotations

import json

import pytest

from braindrill_ext.sandbox import programs
from tests.helpers import workers


@pytest.fixture
def no_unshare(tmp_path):
    """The shipped runner profile without what allows new namespaces: ``clone`` and
    ``unshare`` are then Docker's default (with their namespace flags: CAP_SYS_ADMIN only)."""
    profile = json.loads(programs.SECCOMP)
    for rule in profile["syscalls"]:
        if rule.get("comment", "").startswith("braindrill"):
            rule["names"] = [name for name in rule["names"] if name not in ("clone", "unshare")]
    path = tmp_path / "no-unshare.json"
    path.write_text(json.dumps(profile))
    return str(path)


@pytest.fixture
def braindrill_config(no_unshare):
    hosts = [{"name": "local", "sandbox": "auto", "runner_seccomp": no_unshare}]
    return {"ExecutionEngine": {"hosts": hosts}, "WarmPools": {"enabled": False}}


async def test_auto_falls_back_to_containers_where_runners_cannot_nest(jp_fetch):
    body = json.dumps({"code": "import socket; print(socket.gethostname())"})
    headers = {"Content-Type": "application/json"}
    for _ in range(2):
        response = await jp_fetch("lang", "python", method="POST", body=body, headers=headers)
        result = json.loads(response.body)
        assert result["status"] == "ok", result
        assert "-" not in result["stdout"].strip()  # a container's hostname, not <runner>-<n>
    host = (await workers(jp_fetch))["local"]
    assert host["sandbox"] == "auto"
    choice = host["sandboxes"]["python"]
    assert choice["kind"] == "container", host
    assert "not permitted" in choice["reason"] or "unshare" in choice["reason"], choice


class TestAutoNests:
    @pytest.fixture
    def braindrill_config(self):
        return {"WarmPools": {"enabled": False}}

    async def test_auto_nests_where_the_host_allows_it(self, jp_fetch):
        body = json.dumps({"code": "import socket; print(socket.gethostname())"})
        headers = {"Content-Type": "application/json"}
        response = await jp_fetch("lang", "python", method="POST", body=body, headers=headers)
        result = json.loads(response.body)
        assert result["status"] == "ok", result
        assert result["stdout"].strip().rpartition("-")[2].isdigit()  # <runner>-<sandbox number>
        host = (await workers(jp_fetch))["local"]
        assert host["sandboxes"]["python"] == {
            "kind": "nested",
            "reason": "auto: a runner made nested sandboxes here",
        }
