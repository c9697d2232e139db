"""``Reaper.owner_is_dead``: whose leftovers the reaper may remove, judged without Docker (the
removal itself, on real containers: tests/docker/sandbox/test_sandbox_security.py and
tests/docker/hosts/test_hosts_restart.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from braindrill_ext.hosts import reaper as reaper_module
from braindrill_ext.hosts.reaper import Reaper

MASTER = "m-0123"
DEAD_PID = 2**22 + 17  # above Linux's largest pid_max: no such process


@pytest.fixture
def reaper():
    return Reaper(f"{MASTER}:{os.getpid()}:this-engine", MASTER, logging.getLogger("test"))


def test_dead_pid_has_no_process():
    with pytest.raises(ProcessLookupError):
        os.kill(DEAD_PID, 0)


def test_an_engine_of_another_master_is_never_judged(reaper):
    assert not reaper.owner_is_dead(f"other-master:{DEAD_PID}:n")
    assert not reaper.owner_is_dead(f"other-master:{os.getpid()}:n")


@pytest.mark.parametrize(
    "owner",
    ["", MASTER, f"{MASTER}:", f"{MASTER}:abc:n", f"{MASTER}:-5:n", f"{MASTER}::n", "garbage"],
)
def test_a_malformed_owner_is_not_judged(reaper, owner):
    assert not reaper.owner_is_dead(owner)


def test_its_own_owner_is_alive(reaper):
    assert not reaper.owner_is_dead(reaper.owner)


def test_an_owner_whose_process_is_gone_is_dead(reaper):
    assert reaper.owner_is_dead(f"{MASTER}:{DEAD_PID}:n")
    assert reaper.owner_is_dead(f"{MASTER}:{DEAD_PID}")  # no nonce: the pid still counts


def test_an_owner_whose_process_lives_is_alive(reaper):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not reaper.owner_is_dead(f"{MASTER}:{child.pid}:n")
        assert not reaper.owner_is_dead(f"{MASTER}:{os.getppid()}:n")
    finally:
        child.kill()
        child.wait()
    assert reaper.owner_is_dead(f"{MASTER}:{child.pid}:n")  # once it is gone


def test_an_earlier_engine_of_this_very_process_is_dead(reaper):
    """Same pid, another nonce: an engine this process stopped (or lost) before the current."""
    assert reaper.owner_is_dead(f"{MASTER}:{os.getpid()}:an-earlier-engine")


def test_a_process_it_may_not_signal_is_alive(reaper, monkeypatch):
    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(reaper_module.os, "kill", kill)
    assert not reaper.owner_is_dead(f"{MASTER}:{DEAD_PID}:n")
