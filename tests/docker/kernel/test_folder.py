"""The notebook's own folder, run as a user runs a notebook from a script (nbclient, whose
``resources.metadata.path`` is the kernel's working directory): its files are what the cells find
in ``/work``, what they write there appears in it, and nothing else on the machine is read or
written. The same through a Jupyter server is in ``test_kernel_server.py``."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.usefixtures("embedded_engine")


@pytest.fixture(scope="module")
def embedded_config():
    return {"NotebookFolder": {"max_files": 12}}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A notebook's folder inside the script's current directory (its root)."""
    monkeypatch.chdir(tmp_path)
    nb = tmp_path / "project"
    (nb / "data").mkdir(parents=True)
    (nb / "data" / "table.csv").write_bytes(b"a,b\n1,2\n\xff\n")  # not UTF-8: bytes as they are
    (nb / "notes.txt").write_text("old notes")
    (nb / "analysis.ipynb").write_text("{}")
    (nb / ".env").write_text("TOKEN=1")
    (nb / ".git").mkdir()
    (nb / ".git" / "config").write_text("[core]")
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    os.symlink(outside, nb / "link.txt")
    return nb


def run(folder, *cells, kernel="braindrill-python"):
    """Run ``cells`` as a notebook in ``folder``; their outputs' texts, one list per cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    client = NotebookClient(
        nb, kernel_name=kernel, resources={"metadata": {"path": str(folder)}}, allow_errors=True
    )
    client.execute()
    return [[text_of(output) for output in cell.outputs] for cell in nb.cells]


def text_of(output) -> str:
    return output.get("text") or output.get("data", {}).get("text/plain") or output.get("ename")


def test_cells_see_the_folder_and_write_into_it(folder):
    out = run(
        folder,
        "print(open('data/table.csv', 'rb').read())",
        "import os\nprint(sorted(os.listdir('.')))",
        "open('report.txt', 'w').write('made')\nos.makedirs('out/plots')\n"
        "open('out/plots/p.txt', 'w').write('p')\nopen('notes.txt', 'a').write(' + new')",
        "os.remove('data/table.csv')",
        "print(os.path.exists('data/table.csv'), open('report.txt').read())",
    )
    assert out[0][-1] == "b'a,b\\n1,2\\n\\xff\\n'\n"
    listed = out[1][-1]
    assert "'notes.txt'" in listed and "'analysis.ipynb'" in listed and "'.env'" in listed
    assert "'.git'" not in listed  # hidden directories are left out
    assert (folder / "report.txt").read_text() == "made"
    assert (folder / "out" / "plots" / "p.txt").read_text() == "p"
    assert (folder / "notes.txt").read_text() == "old notes + new"
    assert not (folder / "data" / "table.csv").exists()
    assert out[4] == ["False made\n"]


def test_notebooks_hidden_files_and_what_is_outside_are_never_changed(folder):
    out = run(
        folder,
        "import os\nprint(os.path.exists('link.txt'))",
        "open('analysis.ipynb', 'w').write('x')\nopen('.env', 'w').write('x')\n"
        "open('link.txt', 'w').write('through the link')",
        "import os\nos.remove('analysis.ipynb')",
    )
    assert out[0][-1] == "False\n"  # a symlink is not read
    assert "link.txt (not a regular file)" in out[0][0]
    assert "analysis.ipynb" in out[1][-1] and ".env" in out[1][-1]  # named, not written
    assert (folder / "analysis.ipynb").read_text() == "{}"
    assert (folder / ".env").read_text() == "TOKEN=1"
    assert (folder.parent / "outside.txt").read_text() == "outside"
    assert os.path.islink(folder / "link.txt")
    assert (folder / "analysis.ipynb").exists()


def test_over_the_caps_what_is_left_out_is_named(folder):
    for n in range(15):
        (folder / f"f{n:02}.txt").write_text(str(n))
    out = run(folder, "import os\nprint(len([n for n in os.listdir('.') if n.endswith('.txt')]))")
    assert "over the notebook folder's caps" in out[0][0] and "f14.txt" in out[0][0]


def test_a_folder_outside_the_root_or_turned_off_is_not_synced(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(folder / "data")  # the root is now below the notebook's folder
    out = run(folder, "import os\nprint(sorted(os.listdir('.')))\nopen('x.txt', 'w').write('x')")
    assert "notes.txt" not in out[0][-1] and not (folder / "x.txt").exists()
    monkeypatch.chdir(tmp_path)
    out = run(
        folder,
        "%folder off\nimport os\nprint(os.path.exists('notes.txt'))\nopen('y.txt', 'w').close()",
    )
    assert out[0][-1] == "False\n" and not (folder / "y.txt").exists()
