"""Braindrill: sandboxed, distributed code execution for Jupyter Server."""

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    from .app import BraindrillApp

    return [{"module": "braindrill_ext.app", "app": BraindrillApp}]
