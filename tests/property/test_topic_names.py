"""Properties of the topic name grammar and of Kafka's naming rules."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lab.clients.topic_names import (MAX_KAFKA_NAME_CHARS, TopicName, TopicNameError, collides,
                                     validate_kafka_name)

pytestmark = pytest.mark.property

parts = st.from_regex(r"\A[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,5}){0,2}\Z")
names = st.builds(TopicName, parts, parts, parts, parts, st.integers(1, 10**6))


def kafka_accepts(name: str) -> bool:
    """Kafka's rule, written independently of the code under test."""
    return (0 < len(name) <= 249 and name not in (".", "..")
            and all(c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-" for c in name))


@given(names)
def test_parse_inverts_str(name: TopicName) -> None:
    assert TopicName.parse(str(name)) == name


@given(names)
def test_every_built_name_is_one_kafka_accepts(name: TopicName) -> None:
    assert kafka_accepts(str(name)) and validate_kafka_name(str(name)) == str(name)


@given(names, names)
def test_two_names_of_the_grammar_never_collide(a: TopicName, b: TopicName) -> None:
    assert not collides(str(a), str(b))


@given(st.one_of(st.text(max_size=300), st.from_regex(r"\A[a-zA-Z0-9._-]{0,260}\Z")))
def test_kafka_validation_agrees_with_kafkas_rule(name: str) -> None:
    if kafka_accepts(name):
        assert validate_kafka_name(name) == name
    else:
        with pytest.raises(TopicNameError):
            validate_kafka_name(name)


@given(st.from_regex(r"\A[a-z0-9._]{1,20}\Z"), st.from_regex(r"\A[a-z0-9._]{1,20}\Z"))
def test_collision_is_exactly_dots_against_underscores(a: str, b: str) -> None:
    assert collides(a, b) == collides(b, a)
    assert collides(a, b) == (a != b and len(a) == len(b)
                              and all(x == y or {x, y} == {".", "_"} for x, y in zip(a, b)))


@given(st.text(max_size=80))
def test_any_text_parses_or_names_the_part_at_fault(text: str) -> None:
    try:
        name = TopicName.parse(text)
    except TopicNameError as err:
        assert err.part in ("name", "environment", "domain", "entity", "event", "version")
        assert str(err).startswith(f"topic name {err.part}:")
    else:
        assert str(name) == text


@given(parts, st.integers(1, 9))
def test_a_name_too_long_for_kafka_is_refused_whole(part: str, version: int) -> None:
    long_part = (part + "-x" * 200)[:200]
    assume(re.fullmatch(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*", long_part))
    with pytest.raises(TopicNameError, match=str(MAX_KAFKA_NAME_CHARS)):
        TopicName(long_part, long_part, part, part, version)
