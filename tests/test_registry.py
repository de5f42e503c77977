"""common/registry.py: one registry class for every registry in the project."""

import pytest

from common.errors import UniLSegError, UnknownNameError
from common.registry import Registry


class Thing:
    def __init__(self, size: int = 1):
        if size < 0:
            raise TypeError("a bug inside the constructor")
        self.size = size


def test_register_get_build_and_meta():
    r = Registry("thing")
    r.register("a", colour="red")(Thing)
    assert r.get("a") is Thing and r.meta("a") == {"colour": "red"} and "a" in r and r.names() == ["a"]
    assert r.build("a", size=3).size == 3
    with pytest.raises(ValueError, match="'a' is already registered"):
        r.register("a")(dict)


def test_unknown_names_and_parameters_are_user_errors():
    r = Registry("thing")
    r.register("a")(Thing)
    with pytest.raises(UnknownNameError, match="unknown thing 'b'; known: a ") as e:
        r.get("b")
    assert isinstance(e.value, KeyError) and str(e.value).startswith("unknown thing")  # not quoted
    with pytest.raises(UniLSegError, match="thing 'a':.*colour"):
        r.build("a", colour=1)
    with pytest.raises(TypeError, match="a bug inside"):  # raised inside the constructor: not a user error
        r.build("a", size=-1)


def test_modules_are_imported_on_first_lookup(tmp_path, monkeypatch):
    (tmp_path / "reg_mod_xyz.py").write_text(f"import sys\nsys.modules[{__name__!r}].LAZY.register('late')(dict)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert LAZY.names() == ["late"]


LAZY = Registry("lazy thing", ["reg_mod_xyz"])


def test_plugin_names_import_a_class():
    r = Registry("thing")
    assert r.get("collections:OrderedDict").__name__ == "OrderedDict" and r.meta("collections:OrderedDict") == {}
    with pytest.raises(UnknownNameError, match="cannot import"):
        r.get("no_such_module_xyz:Thing")
