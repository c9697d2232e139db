"""``braindrill_ext.engine.validation``'s limits: a request's ``limits`` object and a cell's
``%%limits`` line, resolved against the language's defaults and the operator's maxima, checked
without Docker (the rest of a request: ``test_validation.py``)."""

from __future__ import annotations

import math

import pytest

from braindrill_ext.engine.limits import REQUESTABLE, LimitsPolicy
from braindrill_ext.engine.validation import resolve_limits, split_limits
from braindrill_ext.errors import InvalidRequest
from braindrill_ext.execution import Limits

from .sample_requests import PYTHON, C, make


# -- resolve_limits --------------------------------------------------------------------------------
@pytest.mark.parametrize("requested", [None, {}])
def test_no_request_is_the_languages_defaults(policy, requested):
    assert resolve_limits(policy, PYTHON, requested) == policy.defaults(PYTHON) == Limits()
    assert resolve_limits(policy, C, requested).memory_mib == 512  # the kernelspec's default


def test_requested_limits_replace_the_defaults(policy):
    limits = resolve_limits(policy, PYTHON, {"timeout_s": 2.5, "memory_mib": 64, "cpus": 1})
    assert (limits.timeout_s, limits.memory_mib, limits.cpus) == (2.5, 64, 1)
    assert limits.pids == policy.pids  # the rest stays


@pytest.mark.parametrize("name", ["pids", "nofile", "workdir_mib", "output_record_bytes", "x"])
def test_unknown_or_fixed_limit_is_refused(policy, name):
    with pytest.raises(InvalidRequest, match=f"unknown or fixed limit '{name}'") as e:
        resolve_limits(policy, PYTHON, {name: 1})
    assert all(allowed in str(e.value) for allowed in REQUESTABLE)


def test_limits_must_be_an_object(policy):
    with pytest.raises(InvalidRequest, match="'limits' must be an object"):
        resolve_limits(policy, PYTHON, [["timeout_s", 1]])


@pytest.mark.parametrize(
    "name, value, needle",
    [
        ("timeout_s", True, "must be a number"),
        ("timeout_s", "9", "must be a number"),
        ("timeout_s", None, "must be a number"),
        ("memory_mib", False, "must be a whole number"),
        ("memory_mib", 128.0, "must be a whole number"),
        ("memory_mib", 64.5, "must be a whole number"),
        ("output_bytes", "1000", "must be a whole number"),
    ],
)
def test_wrong_types_are_refused(policy, name, value, needle):
    with pytest.raises(InvalidRequest, match=needle):
        resolve_limits(policy, PYTHON, {name: value})


def test_a_whole_number_is_a_number(policy):
    assert resolve_limits(policy, PYTHON, {"timeout_s": 3}).timeout_s == 3


@pytest.mark.parametrize("name", REQUESTABLE)
@pytest.mark.parametrize("value", [0, -1])
def test_zero_or_less_is_refused(policy, name, value):
    with pytest.raises(InvalidRequest, match=f"'{name}' must be greater than 0, got {value}"):
        resolve_limits(policy, PYTHON, {name: value})


@pytest.mark.parametrize("name", ["timeout_s", "cpus", "compile_timeout_s"])
def test_nan_is_refused(policy, name):
    """NaN is neither <= 0 nor above a maximum; let through, it became a server error where the
    sandbox turns the limit into an integer (int(nan) raises)."""
    with pytest.raises(InvalidRequest, match=f"'{name}' must be greater than 0"):
        resolve_limits(policy, PYTHON, {name: math.nan})


def test_infinity_is_above_the_maximum(policy):
    with pytest.raises(InvalidRequest, match="above the maximum of 60"):
        resolve_limits(policy, PYTHON, {"timeout_s": math.inf})


@pytest.mark.parametrize("name", REQUESTABLE)
def test_every_requestable_limit_has_a_maximum(policy, name):
    maximum = policy.maximum(name)
    assert maximum is not None and maximum > 0
    with pytest.raises(InvalidRequest, match=f"'{name}'=.* is above the maximum of {maximum}"):
        resolve_limits(policy, PYTHON, {name: maximum * 2})


@pytest.mark.parametrize("name", REQUESTABLE)
def test_raising_up_to_the_maximum_is_allowed(policy, name):
    maximum = policy.maximum(name)
    assert getattr(resolve_limits(policy, PYTHON, {name: maximum}), name) == maximum


def test_the_operators_maxima_apply(policy):
    policy.max_timeout_s, policy.max_memory_mib = 20, 300
    assert resolve_limits(policy, PYTHON, {"timeout_s": 20}).timeout_s == 20
    with pytest.raises(InvalidRequest, match=r"'timeout_s'=21 is above the maximum of 20"):
        resolve_limits(policy, PYTHON, {"timeout_s": 21})
    with pytest.raises(InvalidRequest, match=r"'memory_mib'=301 is above the maximum of 300"):
        resolve_limits(policy, PYTHON, {"memory_mib": 301})


def test_a_default_above_the_maximum_may_be_asked_again(policy):
    """C's kernelspec gives 90 s, over the 60 s maximum: up to its own default is allowed."""
    assert resolve_limits(policy, C, None).timeout_s == 90
    assert resolve_limits(policy, C, {"timeout_s": 90}).timeout_s == 90
    assert resolve_limits(policy, C, {"timeout_s": 75}).timeout_s == 75
    with pytest.raises(InvalidRequest, match="above the maximum of 60"):
        resolve_limits(policy, C, {"timeout_s": 91})


def test_operator_language_limits_come_before_the_kernelspecs():
    policy = LimitsPolicy(language_limits={"c": {"memory_mib": 300}, "python": {"cpus": 0.5}})
    assert resolve_limits(policy, C, None).memory_mib == 300
    assert resolve_limits(policy, PYTHON, None).cpus == 0.5


# -- split_limits ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "code",
    ["print(1)", "", "\n%%limits timeout_s=1", "%%limitsx timeout_s=1\nx", "# %%limits a=1"],
)
def test_a_cell_without_the_limits_line_is_unchanged(code):
    assert split_limits(code) == (None, code)


def test_limits_line_gives_name_value_pairs_and_the_rest_of_the_cell():
    limits, code = split_limits("%%limits timeout_s=30 memory_mib=512 cpus=0.5\nprint(1)\nx")
    assert limits == {"timeout_s": 30, "memory_mib": 512, "cpus": 0.5}
    assert type(limits["timeout_s"]) is int and type(limits["cpus"]) is float
    assert code == "print(1)\nx"


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("%%limits\nprint(1)", ({}, "print(1)")),
        ("%%limits timeout_s=1", ({"timeout_s": 1}, "")),
        ("  %%limits   timeout_s=1  \ncode", ({"timeout_s": 1}, "code")),
        ("%%limits timeout_s=1e1\n", ({"timeout_s": 10.0}, "")),
    ],
)
def test_limits_line_forms(cell, expected):
    assert split_limits(cell) == expected


@pytest.mark.parametrize("word", ["timeout_s", "=5", "timeout_s:5"])
def test_a_word_that_is_no_pair_is_refused(word):
    with pytest.raises(InvalidRequest, match=f"takes name=value pairs, got '{word}'"):
        split_limits(f"%%limits {word}\nprint(1)")


@pytest.mark.parametrize("value", ["lots", "", "1g", "0x10"])
def test_a_value_that_is_no_number_is_refused(value):
    with pytest.raises(InvalidRequest, match=f"limit 'memory_mib' must be a number, got '{value}'"):
        split_limits(f"%%limits memory_mib={value}\nprint(1)")


def test_a_cells_limits_are_checked_like_a_requests(policy):
    limits, code = split_limits("%%limits timeout_s=100000\nprint(1)")
    with pytest.raises(InvalidRequest, match="maximum"):
        make(policy, code, limits=limits)
    limits, code = split_limits("%%limits timeout_s=0\nprint(1)")
    with pytest.raises(InvalidRequest, match="greater than 0"):
        make(policy, code, limits=limits)


def test_a_cells_nan_limit_is_refused(policy):
    limits, code = split_limits("%%limits timeout_s=nan\nprint(1)")
    with pytest.raises(InvalidRequest, match="greater than 0"):
        make(policy, code, limits=limits)
