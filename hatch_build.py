"""Install every ``kernels/<language>/`` folder as the kernelspec ``braindrill-<language>``.

Called by hatchling when it builds a wheel (``pip install .`` or ``pip install -e .``), so that
adding a language is adding a folder: no list of languages to keep in step here or in
pyproject.toml.
"""

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class KernelspecsBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        kernels = Path(self.root) / "kernels"
        for folder in sorted(p for p in kernels.iterdir() if (p / "kernel.json").is_file()):
            dest = f"share/jupyter/kernels/braindrill-{folder.name}"
            build_data["shared_data"][str(folder.relative_to(self.root))] = dest
