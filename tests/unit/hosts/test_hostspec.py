"""``braindrill_ext.hosts.hostspec.check_host_spec``: the worker-host entries an operator writes,
checked without Docker (through ``ExecutionEngine.hosts`` as well in test_hosts_tls.py)."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from braindrill_ext.hosts import hostspec
from braindrill_ext.hosts.hostspec import HOST_KEYS, check_host_spec

TLS = {"ca": "/certs/ca.pem", "cert": "/certs/cert.pem", "key": "/certs/key.pem"}


def check(spec, names=None):
    names = set() if names is None else names
    check_host_spec(spec, names)
    return names


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "local"},
        {"name": "a", "url": "unix:///var/run/docker.sock", "slots": 4, "memory_mib": 2048},
        {"name": "a", "url": "tcp://10.0.0.1:2376", "tls": TLS},
        {"name": "a", "url": "tcp://10.0.0.1:2375", "insecure": True},
        {"name": "a", "url": "ssh://braindrill@worker:22", "slots": 3},
        {"name": "a", "runtime": "runsc", "images": {"python": "mine/python:1"}},
        {"name": "a", "url": ""},  # the environment's engine (DOCKER_HOST or the local socket)
    ],
)
def test_good_specs_pass_and_their_name_is_taken(spec):
    assert check(spec) == {spec["name"]}


def test_an_unknown_sandbox_kind_is_refused():
    with pytest.raises(TraitError, match="sandbox must be one of"):
        check({"name": "a", "sandbox": "vm"})


def test_every_documented_key_is_accepted(tmp_path):
    profile = tmp_path / "runner.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}')
    spec = {
        "name": "a",
        "url": "tcp://10.0.0.1:2376",
        "slots": 2,
        "memory_mib": 512,
        "runtime": "runc",
        "sandbox": "nested",
        "tls": TLS,
        "insecure": False,
        "images": {},
        "runner_seccomp": str(profile),
        "channel": False,
    }
    assert set(spec) == HOST_KEYS
    check(spec)


def test_channel_is_true_or_false():
    check({"name": "a", "channel": True})
    with pytest.raises(TraitError, match="channel must be true or false"):
        check({"name": "a", "channel": "yes"})


@pytest.mark.parametrize("content", [None, "not json"])
def test_a_runner_seccomp_profile_must_be_a_json_file(tmp_path, content):
    path = tmp_path / "profile.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TraitError, match="runner_seccomp must be the path of a JSON"):
        check({"name": "a", "runner_seccomp": str(path)})


@pytest.mark.parametrize("spec", ["local", ["name", "a"], None, 1])
def test_a_spec_must_be_a_dict(spec):
    with pytest.raises(TraitError, match="a worker host must be a dict"):
        check(spec)


def test_unknown_keys_are_named_with_the_allowed_ones():
    with pytest.raises(TraitError, match=r"unknown keys \['colour', 'slot'\]") as e:
        check({"name": "a", "colour": "red", "slot": 2})
    assert str(sorted(HOST_KEYS)) in str(e.value)


@pytest.mark.parametrize(
    "spec",
    [{}, {"url": "unix:///x.sock"}, {"name": ""}, {"name": 3}, {"name": None}, {"name": "master"}],
)
def test_a_unique_name_is_needed_and_master_is_taken(spec):
    with pytest.raises(TraitError, match=r"needs a unique name \(not 'master'\)"):
        check(spec)


def test_duplicate_names_are_refused():
    names = check({"name": "a"})
    check({"name": "b"}, names)
    with pytest.raises(TraitError, match=r"unique name.*got 'a'"):
        check({"name": "a", "url": "unix:///other.sock"}, names)


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1", "https://h:2376", "npipe:////./pipe/docker", "10.0.0.1:2376", 5]
)
def test_bad_url_schemes_are_refused(url):
    with pytest.raises(TraitError, match="must start with one of"):
        check({"name": "a", "url": url})


@pytest.mark.parametrize("slots", [0, -1, 1.5, "2", True, None])
def test_slots_must_be_a_whole_number_from_one(slots):
    with pytest.raises(TraitError, match="slots must be an integer >= 1"):
        check({"name": "a", "slots": slots})


@pytest.mark.parametrize("memory", [0, -5, 512.0, "1g", True, False])
def test_memory_mib_must_be_a_whole_number_from_one(memory):
    with pytest.raises(TraitError, match=r"memory_mib must be an integer >= 1 \(MiB\)"):
        check({"name": "a", "memory_mib": memory})


@pytest.mark.parametrize("url", ["unix:///x.sock", "ssh://u@h", ""])
def test_tls_is_for_tcp_only(url):
    with pytest.raises(TraitError, match="tls applies to tcp:// urls only"):
        check({"name": "a", "url": url, "tls": TLS})


@pytest.mark.parametrize(
    "tls", [{}, {"ca": "x"}, {**TLS, "extra": "y"}, ["ca", "cert", "key"], "/certs"]
)
def test_tls_must_name_ca_cert_and_key(tls):
    with pytest.raises(TraitError, match=r"tls must be \{ca, cert, key\}"):
        check({"name": "a", "url": "tcp://10.0.0.1:2376", "tls": tls})


@pytest.mark.parametrize("insecure", [None, False, "yes", 1])
def test_tcp_without_tls_is_refused_unless_insecure_is_true(insecure):
    spec = {"name": "a", "url": "tcp://10.0.0.1:2375"}
    if insecure is not None:
        spec["insecure"] = insecure
    with pytest.raises(TraitError, match=r"without tls is refused.*insecure: true"):
        check(spec)


def test_ssh_needs_paramiko(monkeypatch):
    monkeypatch.setattr(hostspec.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TraitError, match="ssh:// needs the paramiko package"):
        check({"name": "a", "url": "ssh://u@h"})
    check({"name": "b", "url": "unix:///x.sock"})  # only ssh:// needs it


@pytest.mark.parametrize("images", [["python"], "python:3", None])
def test_images_must_be_a_dict(images):
    with pytest.raises(TraitError, match="images must be a dict"):
        check({"name": "a", "images": images})
