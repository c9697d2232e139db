"""Making runtime images: ``braindrill-images prepare`` uses what the Docker host has, pulls the
official image, or builds one from Debian packages.

For each language it uses the official image if present, else pulls it, else builds
``braindrill/<language>:bookworm``: one shared base (``mmdebstrap`` → ``docker import``), built
once, then a thin layer per language with its Debian packages. The build path serves air-gapped
sites and this project's CI. Each image's runtime version is recorded once (see ``versions.py``).
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
from docker.errors import APIError, ContainerError

from ..languages import Language, LanguageRegistry
from ..sandbox.protocol import WORKDIR
from . import versions
from .images import image_id, image_present, resolve_image

BASE_IMAGE = "braindrill/base:bookworm"
# Raised when what the built images hold changes (2: python3 in the base, for slot runners): an
# image built to an older recipe is built again.
BUILD_LABEL, BUILD_REVISION = "org.braindrill.build", "2"
PACKAGES_LABEL = "org.braindrill.packages"  # a built image's Debian packages: changed, rebuilt
DEBIAN_SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
LEAN_DPKG = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")


def build_base(client: docker.DockerClient, say) -> None:
    """Build the shared Debian base image with mmdebstrap and import it into the host."""
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    with tempfile.TemporaryDirectory(prefix="braindrill-base-") as tmp:
        tar = f"{tmp}/base.tar"
        # python3: what a slot runner (sandbox kind "nested") runs in every language's image.
        cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet", "--include=python3"]
        cmd += [f"--dpkgopt=path-exclude={p}" for p in LEAN_DPKG]
        cmd += ["bookworm", tar, *DEBIAN_SOURCES]
        say("base", f"mmdebstrap → {BASE_IMAGE}")
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
        with open(tar, "rb") as f:
            client.images.client.api.import_image_from_data(
                f.read(),
                repository=BASE_IMAGE.split(":")[0],
                tag=BASE_IMAGE.split(":")[1],
                changes=['CMD ["/bin/sh"]', f"LABEL {BUILD_LABEL}={BUILD_REVISION}"],
            )


def build_language(
    client: docker.DockerClient, language: Language, say, nocache: bool = False
) -> str:
    """Build ``braindrill/<language>:bookworm`` on top of the base with the language's packages
    (``nocache``: again from the packages, not from the engine's build cache)."""
    packages = " ".join(language.debian_packages)
    dockerfile = (
        f"FROM {BASE_IMAGE}\n"
        # Some postinst scripts (openjdk's) link into man directories the lean base leaves out.
        "RUN mkdir -p /usr/share/man/man1 && apt-get update -q && "
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        f"--no-install-recommends {packages} && apt-get clean && rm -rf /var/lib/apt/lists/*\n"
        f'LABEL org.braindrill.language="{language.name}" {BUILD_LABEL}="{BUILD_REVISION}" '
        f'{PACKAGES_LABEL}="{packages}"\n'
    )
    say(language.name, f"building {language.built_image} from Debian packages: {packages}")
    stream = client.api.build(
        fileobj=io.BytesIO(dockerfile.encode()),
        tag=language.built_image,
        network_mode="host",
        rm=True,
        forcerm=True,
        nocache=nocache,
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
        if ref == lang.built_image and not _current(client, ref, lang):
            say(lang.name, f"{ref} was built to an older recipe: building it again")
            ref = None
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
        if not image_present(client, BASE_IMAGE) or not _current(client, BASE_IMAGE):
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
    for lang in languages:
        if not results[lang.name].startswith("error"):
            record_version(client, lang, results[lang.name], say)
    return results


def record_version(client: docker.DockerClient, language: Language, ref: str, say) -> None:
    """Run the language's ``version_command`` in ``ref`` once and record what it prints, by the
    image's id, for every engine of this machine (``versions.py``)."""
    path = versions.default_cache_path()
    ident = image_id(client, ref)
    if ident in versions.read_cache(path):
        return
    try:
        out = client.containers.run(
            ref,
            list(language.version_command),
            remove=True,
            network_disabled=True,
            user="65534:65534",
            read_only=True,
            working_dir=WORKDIR,
            tmpfs={WORKDIR: "uid=65534", "/tmp": "mode=1777"},
            environment={"HOME": WORKDIR},
            stderr=True,
        )
    except (APIError, ContainerError) as e:
        say(language.name, f"no version: {e}")
        return
    version = versions.parse_version(out.decode("utf-8", "replace"))
    if version:
        versions.record(path, ident, version)
        say(language.name, f"version {version}")


def _current(client: docker.DockerClient, ref: str, language: Language | None = None) -> bool:
    """Whether the built image ``ref`` follows this version's recipe (``BUILD_REVISION``) and,
    for a language's, holds the packages its kernelspec names now."""
    labels = client.api.inspect_image(ref)["Config"].get("Labels") or {}
    if language is not None and labels.get(PACKAGES_LABEL) != " ".join(language.debian_packages):
        return False
    return labels.get(BUILD_LABEL) == BUILD_REVISION


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
