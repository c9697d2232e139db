"""Worker host entries of ``ExecutionEngine.hosts``: their validation, their Docker clients and
the ``WorkerHost`` each one makes."""

from __future__ import annotations

import importlib.util
import json

import docker
from traitlets import TraitError

from .kinds import KINDS
from .workerhost import WorkerHost

HOST_KEYS = {
    "name", "url", "slots", "memory_mib", "runtime", "sandbox", "tls", "insecure", "images",
    "runner_seccomp", "channel",
}  # fmt: skip
SANDBOX_KINDS = KINDS
TLS_KEYS = {"ca", "cert", "key"}
SCHEMES = ("unix://", "tcp://", "ssh://")


def check_host_spec(spec, names: set) -> None:
    """Validate one worker host entry; raise ``TraitError`` naming what is wrong and what is
    allowed. ``names`` collects the names seen so far. Called by the engine's ``hosts`` validator.
    """
    if not isinstance(spec, dict):
        raise TraitError(f"a worker host must be a dict, got {spec!r}")
    unknown = set(spec) - HOST_KEYS
    if unknown:
        raise TraitError(
            f"worker host {spec} has unknown keys {sorted(unknown)}; allowed: {sorted(HOST_KEYS)}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name or name in names or name == "master":
        raise TraitError(f"every worker host needs a unique name (not 'master'), got {name!r}")
    names.add(name)
    url = spec.get("url", "")
    if not isinstance(url, str) or (url and not url.startswith(SCHEMES)):
        raise TraitError(f"worker host {name!r}: url {url!r} must start with one of {SCHEMES}")
    slots = spec.get("slots", 1)
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        raise TraitError(f"worker host {name!r}: slots must be an integer >= 1, got {slots!r}")
    memory = spec.get("memory_mib")
    if memory is not None and (
        not isinstance(memory, int) or isinstance(memory, bool) or memory < 1
    ):
        raise TraitError(
            f"worker host {name!r}: memory_mib must be an integer >= 1 (MiB), got {memory!r}"
        )
    if spec.get("sandbox", "auto") not in SANDBOX_KINDS:
        raise TraitError(
            f"worker host {name!r}: sandbox must be one of {SANDBOX_KINDS}, got {spec['sandbox']!r}"
        )
    tls = spec.get("tls")
    if tls is not None:
        if not url.startswith("tcp://"):
            raise TraitError(f"worker host {name!r}: tls applies to tcp:// urls only, not {url!r}")
        if not isinstance(tls, dict) or set(tls) != TLS_KEYS:
            raise TraitError(
                f"worker host {name!r}: tls must be {{ca, cert, key}} (paths to PEM files), "
                f"got {tls!r}"
            )
    if url.startswith("tcp://") and not tls and spec.get("insecure") is not True:
        raise TraitError(
            f"worker host {name!r}: {url} without tls is refused; give tls "
            "{ca, cert, key} or set insecure: true explicitly"
        )
    if url.startswith("ssh://") and importlib.util.find_spec("paramiko") is None:
        raise TraitError(
            f"worker host {name!r}: ssh:// needs the paramiko package (pip install 'docker[ssh]')"
        )
    if not isinstance(spec.get("images", {}), dict):
        raise TraitError(f"worker host {name!r}: images must be a dict of language → image")
    if not isinstance(spec.get("channel", False), bool):
        raise TraitError(f"worker host {name!r}: channel must be true or false (default: auto)")
    seccomp = spec.get("runner_seccomp")
    if seccomp is not None:
        try:
            with open(seccomp) as f:
                json.load(f)
        except (OSError, TypeError, ValueError) as e:
            raise TraitError(
                f"worker host {name!r}: runner_seccomp must be the path of a JSON seccomp "
                f"profile for its slot runners, got {seccomp!r}: {e}"
            ) from None


def make_client(
    url: str, tls: dict | None, timeout_s: float, api_version: str
) -> docker.DockerClient:
    """A Docker client for one endpoint: ``unix://``, ``tcp://`` (mutual TLS when ``tls`` gives
    ``{ca, cert, key}``), ``ssh://`` (through the ``ssh`` client), or the environment's
    (``DOCKER_HOST`` or the local socket) when ``url`` is empty."""
    # A fixed API version: no round trip at construction, so a host that is down at start-up
    # is just unhealthy (and retried by the health loop) instead of breaking the start.
    kwargs = {"timeout": int(timeout_s), "version": api_version}
    if not url:
        return docker.from_env(**kwargs)
    if tls:
        kwargs["tls"] = docker.tls.TLSConfig(
            client_cert=(tls["cert"], tls["key"]), ca_cert=tls["ca"], verify=True
        )
    if url.startswith("ssh://"):
        kwargs["use_ssh_client"] = True  # shell out to `ssh`: ~/.ssh/config, agent, keys
    client = docker.DockerClient(base_url=url, **kwargs)
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the host's own CA, and would
    # apply HTTP(S)_PROXY: neither belongs on a Docker API connection.
    client.api.trust_env = False
    return client


def make_hosts(specs: list[dict], *, image_source_url: str, api_version: str, defaults, **opts):
    """The worker hosts of the (checked) entries ``specs``, and the master's own engine that
    hosts lacking an image copy it from (None: none; ``image_source_url`` empty is the local
    engine, ``"none"`` none). ``defaults`` (slots, sandbox, images) apply where an entry says
    nothing; ``opts`` are the ``WorkerHost`` keywords every host shares (timeouts, runner
    options, ``on_image``, ``log``). Each host copies images from the master's engine first,
    then from the other hosts. Called by the engine once."""
    hosts = [
        WorkerHost(
            spec["name"],
            connector(spec.get("url", ""), spec.get("tls"), api_version),
            int(spec.get("slots", defaults["slots"])),
            memory_mib=spec.get("memory_mib"),
            runtime=spec.get("runtime", ""),
            sandbox=spec.get("sandbox", defaults["sandbox"]),
            images={**defaults["images"], **spec.get("images", {})},
            runner_seccomp=_read(spec.get("runner_seccomp")),
            channel=spec.get("channel"),
            **opts,
        )
        for spec in specs
    ]
    source = _image_source(image_source_url, specs, api_version, opts)
    for host in hosts:
        others = [h for h in hosts if h is not host]
        host.image_sources = [source, *others] if source else others
    return hosts, source


def _image_source(url: str, specs: list[dict], api_version: str, opts: dict):
    if url == "none" or (not url and any(not spec.get("url") for spec in specs)):
        return None  # off, or the local engine is a worker host: a source as one
    log = opts["log"]
    timeouts = {k: opts[k] for k in ("docker_timeout_s", "ping_timeout_s") if k in opts}
    try:
        return WorkerHost("master", connector(url, None, api_version), 0, log=log, **timeouts)
    except docker.errors.DockerException as e:
        log.info("no image source engine (%s): hosts copy images from each other", e)
        return None


def _read(path: str | None) -> str | None:
    """A runner seccomp profile's JSON, compact (None: the shipped one)."""
    if path is None:
        return None
    with open(path) as f:
        return json.dumps(json.load(f))


def connector(url: str, tls: dict | None, api_version: str):
    """Makes Docker clients for one endpoint, with a per-call timeout in seconds."""
    return lambda timeout_s: make_client(url, tls, timeout_s, api_version)
