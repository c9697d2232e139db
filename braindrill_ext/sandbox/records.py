"""Output records from a sandbox, checked into Jupyter outputs.

A record is what a program's display publisher (or the bootstrap, for files in
``$BRAINDRILL_DISPLAY``) wrote: JSON of one output in its .ipynb shape. It comes from untrusted
code, so it is only ever parsed as JSON and checked field by field here; nothing in it is
evaluated, unpickled or run. What passes is a fresh dict with the known fields only.
"""

from __future__ import annotations

import base64
import json
import re

from ..errors import BadRecord, NotJSON

DATA_OUTPUTS = ("display_data", "update_display_data", "execute_result")
INPUT_REQUEST = "input_request"  # not an output: the program asks the front end for a line
STREAM = "stream"  # not an output: a cell's stderr text, on stdout to keep its place among stdout's
COMM = "comm"  # not an output: a comm message of the cell (comm_open, comm_msg, comm_close)
COMM_TYPES = ("comm_open", "comm_msg", "comm_close")
OUTPUT_TYPES = (*DATA_OUTPUTS, "error", "clear_output", INPUT_REQUEST, STREAM, COMM)
MIME_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*", re.I)
BINARY_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")  # base64 text in .ipynb


def _b64decode(value: str) -> bytes:
    """Strict base64, but for line breaks (.ipynb data and IPython's encoder have them)."""
    return base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)


def parse(raw: bytes) -> dict:
    """The output a record holds. Raises ``BadRecord``."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRecord(f"an output record is not JSON: {e}") from None
    if not isinstance(record, dict) or record.get("output_type") not in OUTPUT_TYPES:
        raise BadRecord(f"an output record needs an output_type among {', '.join(OUTPUT_TYPES)}")
    kind = record["output_type"]
    if kind == "error":
        return _error(record)
    if kind == "clear_output":
        return {"output_type": kind, "wait": _typed(record, "wait", bool, False)}
    if kind == STREAM:
        name = record.get("name")
        if name not in ("stdout", "stderr"):
            raise BadRecord("a stream record's name is stdout or stderr")
        return {"output_type": kind, "name": name, "text": _typed(record, "text", str, "")}
    if kind == COMM:
        return _comm(record)
    if kind == INPUT_REQUEST:
        prompt = _typed(record, "prompt", str, "")
        return {
            "output_type": kind,
            "prompt": prompt,
            "password": _typed(record, "password", bool, False),
        }
    return _data_output(kind, record)


def _data_output(kind: str, record: dict) -> dict:
    metadata = _typed(record, "metadata", dict, {})
    data = _typed(record, "data", dict, None)
    if not data:
        raise BadRecord(f"a {kind} output needs 'data': an object of MIME type → value")
    encoded = isinstance(metadata.get("braindrill"), dict) and (
        metadata["braindrill"].get("encoding") == "base64"
    )
    checked = {}
    for mime, value in data.items():
        if not isinstance(mime, str) or not MIME_RE.fullmatch(mime):
            raise BadRecord(f"{mime!r} is not a MIME type")
        try:
            checked[mime] = _value(mime, value, encoded)
        except NotJSON as e:  # a display file named .json that is not JSON: show its text
            checked.setdefault("text/plain", e.text)
    metadata = {k: v for k, v in metadata.items() if k != "braindrill"}
    output = {"output_type": kind, "data": checked, "metadata": metadata}
    transient = _typed(record, "transient", dict, {})
    display_id = transient.get("display_id")
    if display_id is not None:
        if not isinstance(display_id, str):
            raise BadRecord("transient.display_id must be a string")
        output["transient"] = {"display_id": display_id}
    elif kind == "update_display_data":
        raise BadRecord("an update_display_data output needs transient.display_id")
    if kind == "execute_result":
        count = record.get("execution_count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise BadRecord("execution_count must be an integer")
        output["execution_count"] = count
    return output


def _value(mime: str, value, encoded: bool):
    """A MIME bundle's value: text (binary types as base64 text), or JSON for a JSON type.
    ``encoded``: the bootstrap sent every value base64-encoded (it cannot escape JSON in sh)."""
    is_json = mime == "application/json" or mime.endswith("+json")
    if encoded and isinstance(value, str) and mime not in BINARY_MIMES:
        try:
            value = _b64decode(value).decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII text
            raise BadRecord(f"the {mime} value is not base64 of UTF-8 text") from None
        if is_json:
            try:
                return json.loads(value)
            except ValueError:
                raise NotJSON(mime, value) from None
    if is_json:
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        value = "".join(value)  # .ipynb's multi-line strings
    if not isinstance(value, str):
        raise BadRecord(f"the {mime} value must be text")
    if mime in BINARY_MIMES:
        try:
            _b64decode(value)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise BadRecord(f"the {mime} value is not base64") from None
    return value


def _comm(record: dict) -> dict:
    msg_type = record.get("msg_type")
    if msg_type not in COMM_TYPES:
        raise BadRecord(f"a comm record's msg_type is one of {', '.join(COMM_TYPES)}")
    content = _typed(record, "content", dict, {})
    comm_id = content.get("comm_id")
    if not isinstance(comm_id, str) or not comm_id:
        raise BadRecord("a comm record needs content.comm_id")
    checked = {"comm_id": comm_id, "data": _typed(content, "data", dict, {})}
    if msg_type == "comm_open":
        target = content.get("target_name")
        if not isinstance(target, str):
            raise BadRecord("a comm_open record needs content.target_name")
        checked["target_name"] = target
        if isinstance(content.get("target_module"), str):
            checked["target_module"] = content["target_module"]
    return {"output_type": COMM, "msg_type": msg_type, "content": checked}


def _error(record: dict) -> dict:
    ename = _typed(record, "ename", str, None)
    evalue = _typed(record, "evalue", str, "")
    traceback = _typed(record, "traceback", list, [])
    if ename is None or not all(isinstance(line, str) for line in traceback):
        raise BadRecord("an error output needs ename (text) and traceback (a list of text)")
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": traceback}


def _typed(record: dict, name: str, kind: type, fallback):
    value = record.get(name, fallback)
    if value is not fallback and not isinstance(value, kind):
        raise BadRecord(f"{name!r} of an output must be a {kind.__name__}")
    return value
