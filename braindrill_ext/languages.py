"""Languages: runtime definitions read from the Braindrill kernelspecs.

The kernelspec folders ``kernels/<language>/`` (installed as ``braindrill-<language>``) are the one
source of truth: their ``metadata.braindrill`` names the image, the source file, the optional
compile command, the run command and default limits. Adding a language is adding a folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from jupyter_client.kernelspec import KernelSpecManager

from .errors import UnknownLanguage

KERNEL_PREFIX = "braindrill-"


@dataclass(frozen=True)
class Language:
    name: str
    display_name: str
    image: str
    source_file: str
    run: tuple[str, ...]
    version_command: tuple[str, ...]
    debian_packages: tuple[str, ...] = ()
    compile: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    limits: dict = field(default_factory=dict)
    language_info: dict = field(default_factory=dict)
    network: bool = False
    resource_dir: str = ""
    # The interpreter started with the container, before the code arrives (its argv; then the
    # program, the source file name and the preloads): it runs the payload itself instead of the
    # bootstrap. Interpreted languages only.
    prestart: tuple[str, ...] | None = None
    # The program it runs: files of sandbox/container/, joined in order (sandbox/programs.py).
    prestart_script: tuple[str, ...] = ()
    # Modules the prestarted interpreter imports before the code arrives (after the source file
    # in its argv), so that a cell importing them costs nothing.
    preload: tuple[str, ...] = ()
    # A notebook cell's run argv, when it differs from ``run`` (kernelspec ``"cell": {"run": [...],
    # "files": [...]}``), and the files of sandbox/container/ it needs, put in the job directory:
    # JavaScript's hook that makes an uncaught exception one ``error`` output.
    cell_run: tuple[str, ...] | None = None
    cell_files: tuple[str, ...] = ()

    def variant(self, **changes) -> Language:
        """The same runtime with other fields (the version probe runs ``version_command``)."""
        return dataclasses.replace(self, **changes)

    @property
    def kernel_name(self) -> str:
        return KERNEL_PREFIX + self.name

    @property
    def built_image(self) -> str:
        """The tag of the image built from Debian packages where the official one is missing."""
        return f"braindrill/{self.name}:bookworm"

    @classmethod
    def from_kernelspec(cls, kernel_name: str, spec) -> Language:
        meta = spec.metadata["braindrill"]
        compile_cmd = meta.get("compile")
        prestart, preload, script = meta.get("prestart"), (), ()
        if prestart:
            if compile_cmd:
                raise ValueError(f"{kernel_name}: a compiled language cannot have a prestart")
            parts = prestart["script"]  # a file of container/, or several joined in order
            script = (parts,) if isinstance(parts, str) else tuple(parts)
            preload = tuple(prestart.get("preload", ()))
            prestart = tuple(prestart["argv"])
        cell = meta.get("cell") or {}
        return cls(
            name=kernel_name.removeprefix(KERNEL_PREFIX),
            display_name=spec.display_name,
            image=meta["image"],
            source_file=meta["source_file"],
            run=tuple(meta["run"]),
            version_command=tuple(meta["version_command"]),
            debian_packages=tuple(meta.get("debian_packages", ())),
            compile=tuple(compile_cmd) if compile_cmd else None,
            aliases=tuple(meta.get("aliases", ())),
            limits=dict(meta.get("limits", {})),
            language_info=dict(meta.get("language_info", {})),
            network=bool(meta.get("network", False)),
            resource_dir=spec.resource_dir,
            prestart=prestart or None,
            prestart_script=script if prestart else (),
            preload=preload,
            cell_run=tuple(cell["run"]) if cell.get("run") else None,
            cell_files=tuple(cell.get("files", ())),
        )


class LanguageRegistry:
    """The known languages, by name and alias, read from every Braindrill kernelspec on the
    Jupyter path."""

    def __init__(self, languages: list[Language]):
        self._by_name = {lang.name: lang for lang in languages}
        self._lookup = {}
        for lang in languages:
            for key in (lang.name, *lang.aliases):
                self._lookup.setdefault(key.lower(), lang)

    @classmethod
    def from_kernelspecs(cls, kernel_spec_manager: KernelSpecManager | None = None):
        # Not the native-kernel check (it imports ipykernel: ~0.2 s on a kernel's first start).
        ksm = kernel_spec_manager or KernelSpecManager(ensure_native_kernel=False)
        languages = []
        for kernel_name, _model in sorted(ksm.get_all_specs().items()):
            if not kernel_name.startswith(KERNEL_PREFIX):
                continue
            spec = ksm.get_kernel_spec(kernel_name)
            if "braindrill" in spec.metadata:
                languages.append(Language.from_kernelspec(kernel_name, spec))
        return cls(languages)

    def get(self, name: str) -> Language:
        try:
            return self._lookup[name.lower()]
        except KeyError:
            raise UnknownLanguage(name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __iter__(self):
        return iter(self._by_name[name] for name in self.names())

    def __len__(self):
        return len(self._by_name)
