import pytest

from shards.format import FormatError
from shards.keys import check_key, make_key


@pytest.mark.parametrize("name", ["a.b.c.jpg", "with space/and dir.png", "ñandú 日本.jpg", "...", ""])
def test_keys_are_dot_free_and_valid(name):
    key = make_key("src", name)
    check_key(key)
    assert "." not in key


def test_keys_do_not_collide_when_slugs_match():
    assert make_key("s", "a.b") != make_key("s", "a_b") != make_key("s", "a b")
    assert make_key("s1", "x") != make_key("s2", "x")
    assert make_key("s", "x") == make_key("s", "x")


def test_check_key_rejects_dots():
    with pytest.raises(FormatError):
        check_key("a.b")
