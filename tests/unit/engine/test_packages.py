"""Packages without Docker (``engine/wheels.py``, ``engine/packages.py``): requirements and
wheels checked, a wheel's files read without running anything, the operator's policy, and real
``pip download`` runs against a simple index served on 127.0.0.1 by the test (its downloads
counted: the second install comes from the shared cache). The sandbox side is in
tests/docker/kernel/test_packages.py."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from braindrill_ext.engine.packages import OFF, Packages
from braindrill_ext.engine.wheels import (
    downloaded,
    extract,
    fits_ustar,
    not_found,
    parse_requirements,
    safe_member,
)
from braindrill_ext.errors import PackageRefused, PackagesTooLarge
from braindrill_ext.execution import Execution
from braindrill_ext.languages import Language
from braindrill_ext.sandbox.payload import Tokens, build_payload
from braindrill_ext.sandbox.protocol import SITE_DIR
from tests.wheel_index import WheelIndex, make_wheel

PY = "3.11.2"


def zip_of(tmp_path, members: dict, links=()) -> str:
    path = tmp_path / "x-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return str(path)


# -- requirements and wheels -----------------------------------------------------------------------
def test_requirements_are_names_and_versions_only():
    assert [str(r) for r in parse_requirements(["tabulate==0.9.0", " rich[jupyter]>=13 "])] == [
        "tabulate==0.9.0",
        "rich[jupyter]>=13",
    ]
    for bad in ["x @ https://example.org/x.whl", "-r reqs.txt", "", "a b", "x" * 201]:
        with pytest.raises(PackageRefused, match="bad requirement"):
            parse_requirements([bad])
    with pytest.raises(PackageRefused, match="must be a list"):
        parse_requirements("tabulate")


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../x.py", "a/../../x", "a\\..\\x", "C:/x", "a//b", "./a"]
)
def test_unsafe_member_names_are_refused(tmp_path, name):
    assert not safe_member(name)
    with pytest.raises(PackageRefused, match="refused member"):
        extract(zip_of(tmp_path, {"ok.py": "", name: "x"}), 1 << 20, SITE_DIR)


def test_a_nul_in_a_name_is_unsafe():  # zipfile itself cuts a name at NUL when reading
    assert not safe_member("a\0b")


def test_a_link_member_is_refused(tmp_path):
    with pytest.raises(PackageRefused, match="refused member"):
        extract(zip_of(tmp_path, {"x/link": "/etc/passwd"}, links={"x/link"}), 1 << 20, SITE_DIR)


def test_a_wheel_is_read_as_a_site_tree(tmp_path):
    members = {
        "x/__init__.py": "A = 1\n",
        "x-1.0.dist-info/METADATA": "Name: x\n",
        "x-1.0.data/purelib/y.py": "B = 2\n",
        "x-1.0.data/scripts/run-x": "#!/bin/sh\n",
        "x-1.0.data/data/share/x.txt": "data\n",
        "x/": "",
    }
    files = extract(zip_of(tmp_path, members), 1 << 20, SITE_DIR)
    assert files == {
        "x/__init__.py": b"A = 1\n",
        "x-1.0.dist-info/METADATA": b"Name: x\n",
        "y.py": b"B = 2\n",
    }


def test_a_wheel_over_the_room_left_is_refused(tmp_path):
    with pytest.raises(PackagesTooLarge):
        extract(zip_of(tmp_path, {"x/a.bin": "x" * 1000}), 999, SITE_DIR)


def ustar_takes(path: str) -> bool:
    try:
        tarfile.TarInfo(path).tobuf(tarfile.USTAR_FORMAT)
        return True
    except ValueError:
        return False


LONG = ["d" * 83, "d" * 120, "d/" * 60, "/".join(["d" * 50] * 3 + ["e" * 40]), "d/" + "e" * 101]


@pytest.mark.parametrize("path", LONG)
def test_fits_ustar_is_what_tarfile_takes(path):
    assert fits_ustar(f"{SITE_DIR}/{path}") == ustar_takes(f"{SITE_DIR}/{path}")


def test_both_kinds_of_path_are_tried():
    assert [fits_ustar(f"{SITE_DIR}/{path}") for path in LONG] == [True, False, True, True, False]


def test_names_a_payload_tar_cannot_carry_are_refused(tmp_path):
    with pytest.raises(PackageRefused, match="too long"):
        extract(zip_of(tmp_path, {"d" * 120: "x"}), 1 << 20, SITE_DIR)


def test_pips_output_is_read():
    output = (
        "Collecting tabulate==0.9.0\n  Downloading tabulate-0.9.0-py3-none-any.whl (35 kB)\n"
        "Saved ./tabulate-0.9.0-py3-none-any.whl\nCollecting wcwidth\n"
        "  File was already downloaded /c/wcwidth-0.2.13-py2.py3-none-any.whl\n"
        "Successfully downloaded tabulate wcwidth\n"
    )
    assert downloaded(output) == [
        "tabulate-0.9.0-py3-none-any.whl",
        "wcwidth-0.2.13-py2.py3-none-any.whl",
    ]
    failed = (
        "ERROR: Could not find a version that satisfies the requirement nope (from versions: none)"
    )
    assert not_found(failed) == ("nope", [])


def test_the_site_goes_in_the_payload_under_site_dir():
    lang = Language(
        name="python",
        display_name="Python",
        image="i",
        source_file="main.py",
        run=("python3", "main.py"),
        version_command=("python3", "--version"),
        prestart=("python3", "-c"),
    )
    execution = Execution(lang, "import x", site={"x/__init__.py": b"A = 1\n"})
    payload = b"".join(build_payload(execution, execution.limits, Tokens()))
    _, _, body = payload.partition(b"\n")
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile(f"{SITE_DIR}/x/__init__.py").read() == b"A = 1\n"


# -- the policy, before anything is downloaded -------------------------------------------------
async def test_installation_is_off_by_default():
    with pytest.raises(PackageRefused) as e:
        await Packages().install("k", ["tabulate"], PY, set())
    assert str(e.value) == OFF


@pytest.mark.parametrize(
    ("config", "item", "message"),
    [
        ({"refused": ["Bad_Pkg"]}, "bad-pkg==1", "'bad-pkg' is not allowed"),
        ({"allowed": ["tabulate"]}, "rich", "'rich' is not allowed on this server; allowed: tab"),
        ({}, "pandas==2.0", "pandas is preloaded in this sandbox: its version cannot change"),
    ],
)
async def test_refusals_name_the_package(config, item, message):
    packages = Packages(enabled=True, index_url="http://127.0.0.1:9/simple", **config)
    with pytest.raises(PackageRefused, match=message):
        await packages.install("k", [item], PY, {"numpy", "pandas", "matplotlib"})
    assert packages.listing("k") == []


# -- real pip runs against a local index -----------------------------------------------------------
@pytest.fixture
def index(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "bdtiny", "1.0")
    make_wheel(wheels, "bdtiny", "2.0")
    make_wheel(wheels, "bdbig", "1.0", size=3 << 20)
    with WheelIndex(wheels) as served:
        yield served


def packages_for(index, tmp_path, **config) -> Packages:
    return Packages(enabled=True, index_url=index.url, cache_dir=str(tmp_path / "cache"), **config)


async def test_a_second_owner_is_served_from_the_cache(index, tmp_path):
    packages = packages_for(index, tmp_path)
    first = await packages.install("kernel-1", ["bdtiny==1.0"], PY, set())
    assert first.packages == [{"name": "bdtiny", "version": "1.0"}]
    assert packages.site("kernel-1")["bdtiny/__init__.py"] == b'VALUE = "bdtiny 1.0"\n'
    assert index.downloads("bdtiny-1.0-py3-none-any.whl") == 1
    await packages.install("kernel-2", ["bdtiny==1.0"], PY, set())
    assert index.downloads("bdtiny-1.0-py3-none-any.whl") == 1  # the cache's copy
    assert packages.listing("kernel-2") == [{"name": "bdtiny", "version": "1.0"}]
    packages.drop("kernel-1")
    assert packages.site("kernel-1") == {} and packages.listing("kernel-2") != []


async def test_a_new_version_replaces_the_old_one(index, tmp_path):
    packages = packages_for(index, tmp_path)
    await packages.install("k", ["bdtiny==1.0"], PY, set())
    await packages.install("k", ["bdtiny==2.0"], PY, set())
    assert packages.listing("k") == [{"name": "bdtiny", "version": "2.0"}]
    assert packages.site("k")["bdtiny/__init__.py"] == b'VALUE = "bdtiny 2.0"\n'
    await packages.uninstall("k", ["bdtiny"], PY, set())
    assert packages.listing("k") == [] and packages.site("k") == {}


async def test_over_the_cap_nothing_changes(index, tmp_path):
    packages = packages_for(index, tmp_path, max_mib=2)
    await packages.install("k", ["bdtiny==1.0"], PY, set())
    with pytest.raises(PackagesTooLarge, match=r"more than Packages.max_mib \(2 MiB\).*bdbig"):
        await packages.install("k", ["bdbig"], PY, set())
    assert packages.listing("k") == [{"name": "bdtiny", "version": "1.0"}]


async def test_unknown_packages_and_versions_are_told_apart(index, tmp_path):
    packages = packages_for(index, tmp_path)
    with pytest.raises(PackageRefused, match="no package named 'nope-nothing' on http://127"):
        await packages.install("k", ["nope-nothing"], PY, set())
    with pytest.raises(PackageRefused, match=r"no version of bdtiny matches.*: 1\.0, 2\.0"):
        await packages.install("k", ["bdtiny==3.0"], PY, set())


async def test_a_package_without_a_wheel_for_the_sandbox_is_refused(index, tmp_path):
    make_wheel(index.directory, "bdwin", "1.0").rename(
        index.directory / "bdwin-1.0-cp311-cp311-win_amd64.whl"
    )
    packages = packages_for(index, tmp_path)
    with pytest.raises(PackageRefused, match=r"bdwin has no wheel for the sandbox's Python 3\.11"):
        await packages.install("k", ["bdwin"], PY, set())
