"""Install every ``kernels/<language>/`` folder as the kernelspec ``braindrill-<language>``.

Called by hatchling when it builds a wheel (``pip install .`` or ``pip install -e .``), so that
adding a language is adding a folder: no list of languages to keep in step here or in
pyproject.toml. A folder's ``kernel.json`` holds only what is particular to its language; what
every Braindrill kernelspec shares (the standalone ``argv``, the provisioner) is added here.
"""

import json
import shutil
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ARGV = [
    "python3",
    "-m",
    "braindrill_ext.kernel",
    "-f",
    "{connection_file}",
    "--spec",
    "{resource_dir}",
]
PROVISIONER = {"provisioner_name": "braindrill-provisioner"}


def full_spec(spec: dict) -> dict:
    """A language's kernel.json with the parts every Braindrill kernelspec shares."""
    metadata = {"kernel_provisioner": PROVISIONER, **spec.get("metadata", {})}
    return {"argv": ARGV, **spec, "metadata": metadata}


class KernelspecsBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        kernels = Path(self.root) / "kernels"
        out = Path(self.directory) / "kernelspecs"
        shutil.rmtree(out, ignore_errors=True)
        for folder in sorted(p for p in kernels.iterdir() if (p / "kernel.json").is_file()):
            name = f"braindrill-{folder.name}"
            shutil.copytree(folder, out / name)
            spec = json.loads((folder / "kernel.json").read_text())
            (out / name / "kernel.json").write_text(json.dumps(full_spec(spec), indent=2) + "\n")
            build_data["shared_data"][str(out / name)] = f"share/jupyter/kernels/{name}"
