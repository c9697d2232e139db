"""The sandbox, the bottom layer: one execution in one fresh container (``sandbox.py``) or in a
fresh nested sandbox of a slot runner (``runner.py``); what is sent to it (``payload.py``, over
the container's attach stream: ``attach.py``), how its output is read (``output.py``,
``records.py``), the wire format both sides speak (``protocol.py``) and the programs that run
inside (``container/``, loaded by ``programs.py``)."""
