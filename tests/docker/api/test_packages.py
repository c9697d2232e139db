"""REST's ``packages`` on real containers, from the real PyPI (reached by the server only): a
request installs a small pure-Python package before its code runs, with or without a session (a
session keeps it), and the result says what was installed; without the field it is not
importable; the refusals are HTTP errors; and with installation off (the default) a clear 400.
(Kernels' %pip: tests/docker/kernel/test_packages.py.)"""

from __future__ import annotations

import json

import pytest

from tests.rest import TwoUsers, as_user, create_session, refused, run_as

USERS_AND_NO_POOLS = {
    "ServerApp": {"identity_provider_class": TwoUsers},
    "WarmPools": {"enabled": False},
}
CODE = "import tabulate\nprint(tabulate.__version__)\nprint(tabulate.tabulate([[1, 2]]))"
TABULATE = [{"name": "tabulate", "version": "0.9.0"}]


def post(jp_fetch, code, **fields):
    """POST /lang/python as alice, the result or the refusal."""
    return jp_fetch(
        "lang",
        "python",
        method="POST",
        body=json.dumps({"code": code, **fields}),
        headers={**as_user("alice"), "Content-Type": "application/json"},
        request_timeout=120,
    )


class TestFromPyPI:
    @pytest.fixture
    def braindrill_config(self, tmp_path):
        return {
            **USERS_AND_NO_POOLS,
            "Packages": {"enabled": True, "cache_dir": str(tmp_path / "wheels")},
        }

    async def test_a_request_installs_before_its_code_runs(self, jp_fetch):
        response = await post(jp_fetch, CODE, packages=["tabulate==0.9.0"])
        result = json.loads(response.body)
        assert result["status"] == "ok", result
        assert result["stdout"].startswith("0.9.0\n-  -\n1  2\n-  -\n"), result
        assert result["packages"] == TABULATE
        # for that request only, and not in the image
        result = json.loads((await post(jp_fetch, CODE)).body)
        assert result["status"] == "error" and "ModuleNotFoundError" in result["stderr"]
        assert result["packages"] == []

    async def test_a_session_keeps_its_packages(self, jp_fetch):
        sid = (await create_session(jp_fetch, "alice"))["id"]
        first = await run_as(
            jp_fetch, "alice", "python", "x = 1", session=sid, packages=["tabulate==0.9.0"]
        )
        assert first["status"] == "ok" and first["packages"] == TABULATE, first
        later = await run_as(jp_fetch, "alice", "python", CODE, session=sid)
        assert later["status"] == "ok" and later["stdout"].startswith("0.9.0\n"), later
        assert later["packages"] == []

    async def test_refusals_are_http_errors(self, jp_fetch):
        code, message = await refused(post(jp_fetch, CODE, packages=["no-such-package-bd-24"]))
        assert (code, message) == (
            400,
            "no package named 'no-such-package-bd-24' on https://pypi.org/simple",
        )
        code, message = await refused(post(jp_fetch, CODE, packages=["x @ https://e.org/x.whl"]))
        assert code == 400 and "only names and versions, not URLs" in message


class TestOff:
    @pytest.fixture
    def braindrill_config(self):
        return USERS_AND_NO_POOLS

    async def test_installation_is_off_by_default(self, jp_fetch):
        code, message = await refused(post(jp_fetch, CODE, packages=["tabulate"]))
        assert code == 400
        assert message == (
            "package installation is off on this server: an operator turns it on with "
            "c.Packages.enabled = True"
        )
