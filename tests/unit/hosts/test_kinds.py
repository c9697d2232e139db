"""Which sandbox kind a worker host runs each language in (``hosts/kinds.py``): ``auto`` nests
until a runner says it cannot, then uses containers for that language (and says why), trying
again later; ``nested`` never falls back; ``container`` never nests; a language with network
access never nests."""

from __future__ import annotations

import logging
from unittest import mock

from braindrill_ext.hosts import kinds
from braindrill_ext.hosts.kinds import SandboxKinds
from braindrill_ext.languages import LanguageRegistry

LANGUAGES = LanguageRegistry.from_kernelspecs()
PYTHON, C = LANGUAGES.get("python"), LANGUAGES.get("c")
NETWORKED = PYTHON.variant(network=True)
LOG = logging.getLogger("test")


def test_auto_nests_until_a_runner_cannot_then_uses_containers_and_says_why():
    choices = SandboxKinds("h", "auto", LOG)
    assert choices.nests(PYTHON) and choices.nests(C)
    choices.confirmed(C)
    assert choices.refused(PYTHON, "unshare: Operation not permitted") is True
    assert not choices.nests(PYTHON) and choices.nests(C)
    assert choices.status() == {
        "c": {"kind": "nested", "reason": "auto: a runner made nested sandboxes here"},
        "python": {"kind": "container", "reason": "auto: unshare: Operation not permitted"},
    }


def test_auto_tries_nesting_again_later():
    choices = SandboxKinds("h", "auto", LOG)
    choices.refused(PYTHON, "not ready in time")
    with mock.patch.object(kinds.time, "monotonic", return_value=kinds.time.monotonic() + 3600):
        assert choices.nests(PYTHON)


def test_nested_never_falls_back_and_container_never_nests():
    nested, container = SandboxKinds("h", "nested", LOG), SandboxKinds("h", "container", LOG)
    assert nested.refused(PYTHON, "no user namespaces") is False
    assert nested.nests(PYTHON)
    assert not container.nests(PYTHON)


def test_a_language_with_network_never_nests():
    assert not SandboxKinds("h", "auto", LOG).nests(NETWORKED)
    assert not SandboxKinds("h", "nested", LOG).nests(NETWORKED)
