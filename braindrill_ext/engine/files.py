"""The front doors' way to the files of a state (a REST session's, a kernel's): a part of
``ExecutionEngine``'s API, over the pure tar functions of ``statefiles.py``. The caller
serializes a state's users (a session's lock, a kernel's one cell at a time)."""

from __future__ import annotations

import asyncio

from ..languages import Language
from . import statefiles


class StateFileAccess:
    """Mixed into ``ExecutionEngine``, whose ``states`` and ``limits`` it uses."""

    async def state_files(self, key: str) -> list[dict]:
        """The work directory's files in a state: ``{path, size, mtime}`` (``statefiles.py``)."""
        return await asyncio.to_thread(statefiles.list_files, self.states.get(key))

    async def read_state_file(self, key: str, path: str) -> bytes:
        """One file of a state. Raises ``BadFilePath``, ``UnknownFile``, ``BadState``."""
        return await asyncio.to_thread(statefiles.read_file, self.states.get(key), path)

    async def write_state_file(self, key: str, path: str, data: bytes, language: Language):
        """Write a file into a state within ``language``'s state cap. Raises ``BadFilePath``,
        ``StateTooLarge``, ``StateBudgetFull``, ``BadState``. The caller serializes the state's
        users (a session's lock), as for ``delete_state_file``."""
        cap, blob = self.limits.defaults(language).state_bytes, self.states.get(key)
        args = (blob, path, data, cap, (language.source_file,))
        self.states.put(key, await asyncio.to_thread(statefiles.write_file, *args))

    async def delete_state_file(self, key: str, path: str) -> None:
        """Remove a file from a state. Raises ``BadFilePath``, ``UnknownFile``, ``BadState``."""
        blob = await asyncio.to_thread(statefiles.delete_file, self.states.get(key), path)
        self.states.put(key, blob)

    async def state_file_contents(self, key: str) -> dict[str, tuple[bytes, int]]:
        """Every file of a state at once: path → (bytes, mtime). Raises ``BadState``."""
        _, files = await asyncio.to_thread(statefiles.members, self.states.get(key))
        return {m.path: (m.data, m.mtime) for m in files}

    async def replace_state_files(
        self, key: str, files: dict[str, tuple[bytes, int]], language: Language
    ) -> None:
        """Make ``files`` (path → (bytes, mtime)) the state's files, its variables kept: a
        notebook's folder, the truth for files. Raises ``StateTooLarge`` over the language's
        state cap, ``BadFilePath``, ``BadState``."""
        cap = self.limits.defaults(language).state_bytes
        blob = self.states.get(key)
        new = await asyncio.to_thread(statefiles.with_files, blob, files, cap)
        self.states.put(key, new)
