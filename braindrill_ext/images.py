"""Runtime images: use what the Docker host has, pull the official image, or build one from Debian.

``braindrill-images prepare`` makes every language runnable on a Docker host. For each language it
uses the official image if present, else pulls it, else builds ``braindrill/<language>:bookworm``:
one shared base (``mmdebstrap`` → ``docker import``), built once, then a thin layer per language
with its Debian packages. The build path serves air-gapped sites and this project's CI.
"""

from __future__ import annotations

import argparse
import collections
import io
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import docker
from docker.errors import APIError, ImageNotFound

from .languages import Language, LanguageRegistry

BASE_IMAGE = "braindrill/base:bookworm"
DEBIAN_SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
LEAN_DPKG = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")


def image_present(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def resolve_image(
    client: docker.DockerClient, language: Language, override: str = ""
) -> str | None:
    """The image a host runs ``language`` with: the operator's override, else the official image,
    else the one built from Debian packages; None when the host has none of them."""
    candidates = [override] if override else [language.image, language.built_image]
    return next((ref for ref in candidates if image_present(client, ref)), None)


def copy_image(src_client, dst_client, ref: str, progress=None, log=None) -> None:
    """Copy image ``ref`` from one Docker Engine to another: ``docker save`` on the source streamed
    into ``docker load`` on the destination, never held whole in memory. ``progress(text)`` is
    called as bytes flow (every 16 MiB). Raises ``APIError`` (or a transport error) on failure.

    Called by ``WorkerHost.image_for`` when a host lacks a language's image."""
    start, sent, step = time.monotonic(), 0, 16 << 20
    say = progress or (lambda text: None)

    def chunks():
        nonlocal sent
        next_report = step
        for chunk in src_client.api.get_image(ref, chunk_size=1 << 20):
            sent += len(chunk)
            if sent >= next_report:
                next_report += step
                say(f"{sent >> 20} MiB sent")
                if log is not None:
                    log.info("copying %s: %d MiB sent", ref, sent >> 20)
            yield chunk

    api = dst_client.api
    # Not api.load_image(): the engine answers only once it has unpacked every layer, which can
    # take longer than the client's per-call timeout.
    response = api._post(
        api._url("/images/load"), data=chunks(), params={"quiet": False}, stream=True, timeout=600
    )
    for message in api._stream_helper(response, decode=True):
        if isinstance(message, dict) and message.get("error"):
            raise APIError(f"loading {ref} failed: {message['error']}")
    if not image_present(dst_client, ref):
        raise APIError(f"loading {ref} finished but the image is not there")
    say(f"done: {sent >> 20} MiB in {time.monotonic() - start:.1f} s")
    if log is not None:
        log.info("copied %s (%d MiB) in %.1f s", ref, sent >> 20, time.monotonic() - start)


def build_base(client: docker.DockerClient, say) -> None:
    """Build the shared Debian base image with mmdebstrap and import it into the host."""
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    with tempfile.TemporaryDirectory(prefix="braindrill-base-") as tmp:
        tar = f"{tmp}/base.tar"
        cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet"]
        cmd += [f"--dpkgopt=path-exclude={p}" for p in LEAN_DPKG]
        cmd += ["bookworm", tar, *DEBIAN_SOURCES]
        say("base", f"mmdebstrap → {BASE_IMAGE}")
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
        with open(tar, "rb") as f:
            client.images.client.api.import_image_from_data(
                f.read(),
                repository=BASE_IMAGE.split(":")[0],
                tag=BASE_IMAGE.split(":")[1],
                changes=['CMD ["/bin/sh"]'],
            )


def build_language(client: docker.DockerClient, language: Language, say) -> str:
    """Build ``braindrill/<language>:bookworm`` on top of the base with the language's packages."""
    packages = " ".join(language.debian_packages)
    dockerfile = (
        f"FROM {BASE_IMAGE}\n"
        # Some postinst scripts (openjdk's) link into man directories the lean base leaves out.
        "RUN mkdir -p /usr/share/man/man1 && apt-get update -q && "
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        f"--no-install-recommends {packages} && apt-get clean && rm -rf /var/lib/apt/lists/*\n"
        f'LABEL org.braindrill.language="{language.name}"\n'
    )
    say(language.name, f"building {language.built_image} from Debian packages: {packages}")
    stream = client.api.build(
        fileobj=io.BytesIO(dockerfile.encode()),
        tag=language.built_image,
        network_mode="host",
        rm=True,
        forcerm=True,
        decode=True,
    )
    tail = collections.deque(maxlen=6)
    for chunk in stream:
        if "error" in chunk:
            raise RuntimeError(chunk["error"].strip() + "\n" + "\n".join(tail))
        line = chunk.get("stream", "").strip()
        if line:
            tail.append(line)
        if line.startswith(("Step ", "Setting up ")):
            say(language.name, line)
    return language.built_image


def prepare(client, languages, *, pull=True, build=True, jobs=2, overrides=None, say=None):
    """Make every language in ``languages`` runnable on ``client``'s host.

    Returns ``{language name: image or error message}``.
    """
    say = say or (lambda who, msg: print(f"[{who}] {msg}", flush=True))
    overrides = overrides or {}
    results, to_build = {}, []
    for lang in languages:
        ref = resolve_image(client, lang, overrides.get(lang.name, ""))
        wanted = overrides.get(lang.name) or lang.image
        # A language whose default is the project's own image (no official image has its
        # toolchain) is built here, never pulled: nobody publishes braindrill/* on a registry.
        if ref is None and pull and wanted != lang.built_image:
            ref = _try_pull(client, wanted, lang.name, say)
        if ref:
            say(lang.name, f"using {ref}")
            results[lang.name] = ref
        elif build:
            to_build.append(lang)
        else:
            results[lang.name] = f"error: no image for {lang.name}"
    if to_build:
        if not image_present(client, BASE_IMAGE):
            build_base(client, say)

        def one(lang):
            start = time.monotonic()
            try:
                ref = build_language(client, lang, say)
            except (APIError, RuntimeError) as e:
                say(lang.name, f"build failed: {e}")
                return lang.name, f"error: {e}"
            say(lang.name, f"built {ref} in {time.monotonic() - start:.0f} s")
            return lang.name, ref

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results.update(pool.map(one, to_build))
    return results


def _try_pull(client, ref, who, say):
    say(who, f"pulling {ref}")
    try:
        client.images.pull(ref)
    except APIError as e:
        say(who, f"cannot pull {ref}: {e.explanation or e}")
        return None
    return ref


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="braindrill-images",
        description="Prepare the runtime images of the Braindrill languages on a Docker host.",
    )
    parser.add_argument("command", choices=["prepare", "list"])
    parser.add_argument("languages", nargs="*", help="languages to prepare (default: all)")
    parser.add_argument("--no-pull", action="store_true", help="never pull from a registry")
    parser.add_argument("--jobs", type=int, default=2, help="builds run in parallel (default 2)")
    parser.add_argument(
        "--docker-host", default=None, help="Docker endpoint (default: DOCKER_HOST)"
    )
    args = parser.parse_intermixed_args(argv)

    client = (
        docker.DockerClient(base_url=args.docker_host) if args.docker_host else docker.from_env()
    )
    registry = LanguageRegistry.from_kernelspecs()
    languages = (
        [registry.get(name) for name in args.languages] if args.languages else list(registry)
    )
    if args.command == "list":
        for lang in languages:
            print(f"{lang.name:12} {resolve_image(client, lang) or '(missing)'}")
        return 0
    start = time.monotonic()
    results = prepare(client, languages, pull=not args.no_pull, jobs=args.jobs)
    failed = {k: v for k, v in results.items() if v.startswith("error")}
    print(
        f"prepared {len(results) - len(failed)}/{len(results)} languages "
        f"in {time.monotonic() - start:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
