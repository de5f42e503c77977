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


def test_target_ids_are_dot_free_and_unique():
    from shards.keys import target_id

    keys = [make_key("s", n) for n in ("a.b", "a_1", "x")] + ["a_1", "a"]
    ids = {target_id(k, i): (k, i) for k in keys for i in (0, 1, 10, 12)}
    assert len(ids) == len(keys) * 4  # "a_1"+"_0" and "a"+"_10" etc. never collide
    for tid in ids:
        check_key(tid)
    with pytest.raises(ValueError):
        target_id("a.b", 0)
    with pytest.raises(ValueError):
        target_id("a", -1)


def test_expression_ids_extend_target_ids():
    from shards.keys import expression_id, target_id

    assert expression_id("k-1", 2, 3) == target_id("k-1", 2) + "_3"
    with pytest.raises(ValueError):
        expression_id("k", 0, -1)
