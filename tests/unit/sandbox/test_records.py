"""``braindrill_ext.sandbox.records.parse``: an output record from untrusted code becomes a checked
Jupyter output or a ``BadRecord`` naming why (pure logic; records from real programs are in the
kernel tests)."""

from __future__ import annotations

import base64
import json

import pytest

from braindrill_ext.errors import BadRecord
from braindrill_ext.sandbox.records import parse

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a picture").decode()


def record(**fields) -> bytes:
    return json.dumps(fields).encode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- what passes -----------------------------------------------------------------------------------
def test_display_data():
    output = parse(
        record(
            output_type="display_data",
            data={"text/plain": "x", "text/html": ["<b>", "x</b>"], "image/png": PNG},
            metadata={"image/png": {"width": 10}},
            transient={"display_id": "d1"},
        )
    )
    assert output == {
        "output_type": "display_data",
        "data": {"text/plain": "x", "text/html": "<b>x</b>", "image/png": PNG},
        "metadata": {"image/png": {"width": 10}},
        "transient": {"display_id": "d1"},
    }


def test_only_known_fields_are_kept():
    output = parse(
        record(
            output_type="display_data",
            data={"text/plain": "x"},
            transient={"display_id": "d", "other": 1},
            extra="dropped",
            execution_count=3,
        )
    )
    assert output == {
        "output_type": "display_data",
        "data": {"text/plain": "x"},
        "metadata": {},
        "transient": {"display_id": "d"},
    }


@pytest.mark.parametrize("count", [5, None])
def test_execute_result(count):
    output = parse(
        record(output_type="execute_result", data={"text/plain": "42"}, execution_count=count)
    )
    assert output == {
        "output_type": "execute_result",
        "data": {"text/plain": "42"},
        "metadata": {},
        "execution_count": count,
    }


def test_execute_result_without_a_count():
    output = parse(record(output_type="execute_result", data={"text/plain": "42"}))
    assert output["execution_count"] is None


def test_update_display_data():
    output = parse(
        record(
            output_type="update_display_data",
            data={"text/plain": "2"},
            transient={"display_id": "d1"},
        )
    )
    assert output["output_type"] == "update_display_data"
    assert output["transient"] == {"display_id": "d1"} and output["data"] == {"text/plain": "2"}


@pytest.mark.parametrize("wait", [True, False])
def test_clear_output(wait):
    assert parse(record(output_type="clear_output", wait=wait)) == {
        "output_type": "clear_output",
        "wait": wait,
    }
    assert parse(record(output_type="clear_output")) == {
        "output_type": "clear_output",
        "wait": False,
    }


def test_error():
    output = parse(
        record(output_type="error", ename="ValueError", evalue="boom", traceback=["a", "b"], x=1)
    )
    assert output == {
        "output_type": "error",
        "ename": "ValueError",
        "evalue": "boom",
        "traceback": ["a", "b"],
    }
    assert parse(record(output_type="error", ename="E")) == {
        "output_type": "error",
        "ename": "E",
        "evalue": "",
        "traceback": [],
    }


def test_json_mime_types_keep_their_json():
    data = {"application/json": {"a": [1, 2]}, "application/vnd.vega.v5+json": {"$schema": "x"}}
    assert parse(record(output_type="display_data", data=data))["data"] == data


def test_a_stream_record_is_text_of_a_named_stream():
    assert parse(record(output_type="stream", name="stderr", text="x")) == {
        "output_type": "stream",
        "name": "stderr",
        "text": "x",
    }
    with pytest.raises(BadRecord, match="name is stdout or stderr"):
        parse(record(output_type="stream", name="stdin", text="x"))


def test_a_comm_record_is_a_checked_comm_message():
    opened = record(
        output_type="comm",
        msg_type="comm_open",
        content={"comm_id": "c1", "target_name": "t", "data": {"x": 1}, "extra": "dropped"},
    )
    assert parse(opened) == {
        "output_type": "comm",
        "msg_type": "comm_open",
        "content": {"comm_id": "c1", "data": {"x": 1}, "target_name": "t"},
    }
    with pytest.raises(BadRecord, match="msg_type is one of"):
        parse(record(output_type="comm", msg_type="execute_request", content={"comm_id": "c"}))
    with pytest.raises(BadRecord, match=r"needs content\.comm_id"):
        parse(record(output_type="comm", msg_type="comm_msg", content={"data": {}}))
    with pytest.raises(BadRecord, match=r"needs content\.target_name"):
        parse(record(output_type="comm", msg_type="comm_open", content={"comm_id": "c"}))


# -- what does not ---------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [b"", b"not json", b'{"output_type": ', b"\xff\xfe", b"{'a': 1}"])
def test_not_json_is_refused(raw):
    with pytest.raises(BadRecord, match="an output record is not JSON"):
        parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        record(output_type="display"),
        record(data={"text/plain": "x"}),
        b'["display_data"]',
        b'"display_data"',
        b"null",
    ],
)
def test_unknown_output_types_are_refused(raw):
    with pytest.raises(BadRecord, match="needs an output_type among display_data"):
        parse(raw)


@pytest.mark.parametrize(
    "mime",
    [
        "text",
        "text/",
        "/plain",
        "text/plain/x",
        "text plain",
        "",
        " text/plain",
        "text/plain\n",
    ],
)
def test_bad_mime_keys_are_refused(mime):
    with pytest.raises(BadRecord, match="is not a MIME type"):
        parse(record(output_type="display_data", data={mime: "x"}))


@pytest.mark.parametrize("value", [42, None, True, {"a": 1}, ["a", 1], 1.5])
def test_non_text_values_of_text_types_are_refused(value):
    with pytest.raises(BadRecord, match="the text/plain value must be text"):
        parse(record(output_type="display_data", data={"text/plain": value}))


@pytest.mark.parametrize("mime", ["image/png", "image/jpeg", "image/gif", "image/webp"])
@pytest.mark.parametrize("value", ["not base64!", "abc", "YW Jj"])
def test_binary_types_must_be_base64(mime, value):
    with pytest.raises(BadRecord, match=f"the {mime} value is not base64"):
        parse(record(output_type="display_data", data={mime: value}))


@pytest.mark.parametrize("mime", ["image/png", "image/jpeg"])
def test_non_ascii_in_a_binary_value_is_a_bad_record(mime):
    with pytest.raises(BadRecord, match=f"the {mime} value is not base64"):
        parse(record(output_type="display_data", data={mime: "\u00e9\u00e9\u00e9\u00e9"}))


@pytest.mark.parametrize("kind", ["display_data", "execute_result", "update_display_data"])
@pytest.mark.parametrize("data", [None, {}, [], "text"])
def test_a_data_output_needs_data(kind, data):
    fields = {"output_type": kind, "transient": {"display_id": "d"}}
    if data is not None:
        fields["data"] = data
    with pytest.raises(BadRecord, match=f"a {kind} output needs 'data'|'data' of an output"):
        parse(record(**fields))


@pytest.mark.parametrize("transient", [None, {}, {"display_id": None}])
def test_an_update_needs_its_display_id(transient):
    fields = {"output_type": "update_display_data", "data": {"text/plain": "x"}}
    if transient is not None:
        fields["transient"] = transient
    with pytest.raises(BadRecord, match=r"update_display_data output needs transient\.display_id"):
        parse(record(**fields))


@pytest.mark.parametrize("display_id", [1, ["d"], {"d": 1}])
def test_a_display_id_is_text(display_id):
    with pytest.raises(BadRecord, match=r"transient\.display_id must be a string"):
        parse(
            record(
                output_type="display_data",
                data={"text/plain": "x"},
                transient={"display_id": display_id},
            )
        )


@pytest.mark.parametrize("count", ["1", 1.0, True])
def test_an_execution_count_is_an_integer(count):
    with pytest.raises(BadRecord, match="execution_count must be an integer"):
        parse(record(output_type="execute_result", data={"text/plain": "x"}, execution_count=count))


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"metadata": []}, "'metadata' of an output must be a dict"),
        ({"metadata": None}, "'metadata' of an output must be a dict"),
        ({"transient": "d"}, "'transient' of an output must be a dict"),
    ],
)
def test_fields_of_the_wrong_type_are_refused(fields, needle):
    with pytest.raises(BadRecord, match=needle):
        parse(record(output_type="display_data", data={"text/plain": "x"}, **fields))


@pytest.mark.parametrize("wait", ["yes", 1, None])
def test_clear_output_wait_is_true_or_false(wait):
    with pytest.raises(BadRecord, match="'wait' of an output must be a bool"):
        parse(record(output_type="clear_output", wait=wait))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"ename": None},
        {"evalue": "no name"},
        {"ename": "E", "traceback": ["a", 2]},
        {"ename": "E", "traceback": [None]},
    ],
)
def test_an_error_needs_its_name_and_a_textual_traceback(fields):
    with pytest.raises(BadRecord, match="an error output needs ename"):
        parse(record(output_type="error", **fields))


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"ename": 1}, "'ename' of an output must be a str"),
        ({"ename": "E", "evalue": 3}, "'evalue' of an output must be a str"),
        ({"ename": "E", "traceback": "a"}, "'traceback' of an output must be a list"),
    ],
)
def test_error_fields_of_the_wrong_type_are_refused(fields, needle):
    with pytest.raises(BadRecord, match=needle):
        parse(record(output_type="error", **fields))


# -- values base64-encoded by the bootstrap (it cannot escape JSON in sh) --------------------------
ENCODED = {"braindrill": {"encoding": "base64"}}


def test_encoded_text_values_are_decoded_and_the_marker_dropped():
    output = parse(
        record(
            output_type="display_data",
            data={
                "text/plain": b64('h\u00e9llo\n"quoted"\\'),
                "text/html": b64("<p>\u2603</p>"),
                "application/json": b64('{"a": [1, 2]}'),
                "image/svg+xml": b64("<svg/>"),
                "image/png": PNG,  # binary types stay base64 text, as in .ipynb
            },
            metadata={**ENCODED, "image/png": {"width": 3}},
        )
    )
    assert output["data"] == {
        "text/plain": 'h\u00e9llo\n"quoted"\\',
        "text/html": "<p>\u2603</p>",
        "application/json": {"a": [1, 2]},
        "image/svg+xml": "<svg/>",
        "image/png": PNG,
    }
    assert output["metadata"] == {"image/png": {"width": 3}}


def test_without_the_marker_values_are_taken_as_they_are():
    encoded = b64("plain")
    output = parse(record(output_type="display_data", data={"text/plain": encoded}))
    assert output["data"] == {"text/plain": encoded}
    other = {"braindrill": {"encoding": "utf-8"}}
    output = parse(record(output_type="display_data", data={"text/plain": encoded}, metadata=other))
    assert output["data"] == {"text/plain": encoded} and output["metadata"] == {}


@pytest.mark.parametrize(
    "value", ["not base64!", b64("x")[:-1], base64.b64encode(b"\xff\xfe").decode()]
)
def test_encoded_values_must_be_base64_of_utf8(value):
    with pytest.raises(BadRecord, match="the text/plain value is not base64 of UTF-8 text"):
        parse(record(output_type="display_data", data={"text/plain": value}, metadata=ENCODED))


def test_an_encoded_json_value_that_is_not_json_is_shown_as_text():
    """A display file named .json that holds no JSON (the bootstrap cannot check) shows as its
    text, as the Python runner shows one."""
    output = parse(
        record(
            output_type="display_data",
            data={"application/json": b64("{not json")},
            metadata=ENCODED,
        )
    )
    assert output["data"] == {"text/plain": "{not json"}


def test_non_ascii_in_an_encoded_value_is_a_bad_record():
    with pytest.raises(BadRecord, match="not base64 of UTF-8 text"):
        parse(record(output_type="display_data", data={"text/plain": "\u00e9"}, metadata=ENCODED))


def test_an_encoded_binary_value_is_still_checked():
    with pytest.raises(BadRecord, match="the image/png value is not base64"):
        parse(record(output_type="display_data", data={"image/png": "%%%"}, metadata=ENCODED))
