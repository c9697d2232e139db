"""Operator policy for resource limits: defaults, per-language overrides and maxima."""

from __future__ import annotations

import dataclasses

from traitlets import Dict, Float, Integer, TraitError, validate
from traitlets.config import LoggingConfigurable

from ..execution import Limits
from ..languages import Language

LIMIT_FIELDS = {f.name: f.type for f in dataclasses.fields(Limits)}
# Limits a request may set (others are the operator's alone).
REQUESTABLE = (
    "timeout_s",
    "memory_mib",
    "cpus",
    "output_bytes",
    "compile_timeout_s",
    "compile_output_bytes",
    "compile_memory_mib",
    "display_bytes",
    "state_mib",
    "return_files_bytes",
)


class LimitsPolicy(LoggingConfigurable):
    """Defaults and maxima of every limit. Precedence for a default: the operator's
    ``language_limits`` for the language, then the kernelspec's ``limits``, then the defaults here.
    A request (REST body or kernel) may lower any of ``REQUESTABLE`` or raise it up to the
    maximum (checked by ``validation.resolve_limits``)."""

    timeout_s = Float(10.0, config=True, help="Default wall-clock limit per execution, in seconds.")
    memory_mib = Integer(256, config=True, help="Default memory limit (RAM, no swap), in MiB.")
    cpus = Float(1.0, config=True, help="Default CPU quota, in CPUs.")
    pids = Integer(64, config=True, help="Process/thread limit per sandbox.")
    output_bytes = Integer(1 << 20, config=True, help="Cap per output stream, in bytes.")
    workdir_mib = Integer(64, config=True, help="Size of the tmpfs work directory, in MiB.")
    nofile = Integer(256, config=True, help="Open-file limit (ulimit -n) per sandbox.")
    compile_timeout_s = Float(30.0, config=True, help="Compile-step wall-clock limit, in seconds.")
    compile_output_bytes = Integer(64 << 10, config=True, help="Cap on compiler output, in bytes.")
    compile_memory_mib = Integer(
        512, config=True, help="Default memory limit of the compile step (RAM, no swap), in MiB."
    )
    display_bytes = Integer(
        16 << 20,
        config=True,
        help="Cap on the rich outputs (displays, plots, display files) of one execution, bytes.",
    )
    output_record_bytes = Integer(
        8 << 20, config=True, help="Cap on one rich output (a plot, a display), in bytes of JSON."
    )
    state_mib = Integer(
        64,
        config=True,
        help="Default cap on the state a kernel or REST session carries from one execution to "
        "the next (its work directory's files and Python variables), in MiB.",
    )
    return_files_bytes = Integer(
        16 << 20,
        config=True,
        help="Default cap on the files a request's return_files bring back, in bytes in all.",
    )
    code_bytes = Integer(
        512 << 10,
        config=True,
        help="Largest accepted code + stdin + files, in bytes (larger: 413).",
    )

    max_timeout_s = Float(60.0, config=True, help="Largest wall-clock limit a request may ask.")
    max_memory_mib = Integer(1024, config=True, help="Largest memory limit a request may ask, MiB.")
    max_cpus = Float(2.0, config=True, help="Largest CPU quota a request may ask.")
    max_output_bytes = Integer(8 << 20, config=True, help="Largest output cap a request may ask.")
    max_compile_timeout_s = Float(120.0, config=True, help="Largest compile limit, in seconds.")
    max_compile_output_bytes = Integer(1 << 20, config=True, help="Largest compiler-output cap.")
    max_display_bytes = Integer(64 << 20, config=True, help="Largest rich-output cap, bytes.")
    max_state_mib = Integer(256, config=True, help="Largest state cap a request may ask, MiB.")
    max_return_files_bytes = Integer(
        64 << 20, config=True, help="Largest return_files cap a request may ask, in bytes."
    )
    max_compile_memory_mib = Integer(
        2048, config=True, help="Largest compile-step memory limit a request may ask, MiB."
    )

    language_limits = Dict(
        config=True,
        help="Per-language default limits, e.g. {'java': {'memory_mib': 512}}; they take "
        "precedence over the kernelspec's own defaults.",
    )

    @validate("language_limits")
    def _check_language_limits(self, proposal):
        for lang, limits in proposal["value"].items():
            unknown = set(limits) - set(LIMIT_FIELDS)
            if unknown:
                raise TraitError(
                    f"language_limits[{lang!r}] has unknown limits {sorted(unknown)}; "
                    f"allowed: {sorted(LIMIT_FIELDS)}"
                )
        return proposal["value"]

    def maximum(self, name: str):
        return getattr(self, "max_" + name, None)

    def defaults(self, language: Language) -> Limits:
        values = {name: getattr(self, name) for name in LIMIT_FIELDS}
        values.update({k: v for k, v in language.limits.items() if k in LIMIT_FIELDS})
        values.update(self.language_limits.get(language.name, {}))
        return Limits(**values)
