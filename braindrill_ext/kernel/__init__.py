"""Braindrill kernels: Jupyter kernels whose every cell runs in a fresh container.

- ``kernel.py``: ``BraindrillKernel``, one kernel's ZMQ sockets and messages, served in-process;
- ``loop.py``: ``KernelLoop``, the event loop kernels live on and the engine they use;
- ``provisioner.py``: ``BraindrillProvisioner``, how jupyter_client starts one;
- ``embedded.py``: the engine of a process without a Jupyter server (a script, nbclient);
- ``cells.py``: what a failed cell shows, the banner, ``is_complete``;
- ``__main__.py``: ``python -m braindrill_ext.kernel``, a kernel as a process of its own.
"""
