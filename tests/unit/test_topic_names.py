"""Topic names: each broken rule gets an error naming the part and the rule."""

from __future__ import annotations

import pytest

from lab.clients.topic_names import TopicName, TopicNameError, collides, collision_key, validate_kafka_name
from lab.errors import LabError

pytestmark = pytest.mark.unit


def test_a_name_is_built_and_parsed() -> None:
    name = TopicName("prod", "orders", "payment-method", "updated", 3)
    assert str(name) == "prod.orders.payment-method.updated.v3"
    assert TopicName.parse("prod.orders.payment-method.updated.v3") == name
    assert name.matches(domain="orders", version=3) and not name.matches(environment="test")


@pytest.mark.parametrize(("text", "part", "words"), [
    ("prod.orders.order.created", "name", "4 dot-separated parts"),
    ("prod.orders.order.created.v1.extra", "name", "6 dot-separated parts"),
    ("prod.Orders.order.created.v1", "domain", "lowercase"),
    ("prod.orders.order_line.created.v1", "entity", "no '.' or '_'"),
    ("prod.orders.order.-created.v1", "event", "hyphens"),
    ("1prod.orders.order.created.v1", "environment", "starting with a letter"),
    ("prod.orders.order.created.v0", "version", "positive integer"),
    ("prod.orders.order.created.v01", "version", "positive integer"),
    ("prod.orders.order.created.1", "version", "'v'"),
    ("prod.orders.order.créé.v1", "name", "characters Kafka refuses"),
    ("", "name", "empty"),
])
def test_a_bad_name_names_its_part(text: str, part: str, words: str) -> None:
    with pytest.raises(TopicNameError) as caught:
        TopicName.parse(text)
    assert caught.value.part == part and words in str(caught.value), str(caught.value)
    assert isinstance(caught.value, LabError)


@pytest.mark.parametrize(("name", "words"), [
    (".", "reserved"), ("..", "reserved"), ("a" * 250, "at most 249"), ("a b", "' '"), ("a/b", "'/'"), (None, "string"),
])
def test_kafka_refusals_say_which_rule(name: object, words: str) -> None:
    with pytest.raises(TopicNameError, match=words):
        validate_kafka_name(name)


def test_the_longest_name_kafka_takes() -> None:
    assert validate_kafka_name("a" * 249) == "a" * 249


def test_dots_and_underscores_collide() -> None:
    assert collision_key("a.b_c") == "a_b_c"
    assert collides("metrics.cpu", "metrics_cpu") and collides("a_b.c", "a.b_c")
    assert not collides("a.b", "a.b") and not collides("a.b", "a-b")


def test_bad_parts_are_refused_when_built() -> None:
    with pytest.raises(TopicNameError, match="version"):
        TopicName("prod", "orders", "order", "created", 0)
    with pytest.raises(TopicNameError, match="domain"):
        TopicName("prod", 5, "order", "created")  # type: ignore[arg-type]
