"""Worker hosts: one Docker Engine endpoint each (``workerhost.py``; local socket, TCP with
mutual TLS, SSH), made from the configuration's entries (``hostspec.py``), with the images they
run languages with (``images.py``, ``imagebuild.py`` for ``braindrill-images``, ``versions.py``)
and the reaper of leftover containers (``reaper.py``). Below the engine, above the sandbox."""
