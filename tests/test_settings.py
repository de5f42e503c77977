"""common/settings.py: one field declaration gives the default, help, bounds and choices."""

from dataclasses import dataclass, fields

import pytest

from common.settings import SettingsError, check_settings, default_of, from_dict, setting


@dataclass
class Demo:
    steps: int = setting(10, "how many", min=1, max=100)
    mode: str = setting("a", "which", choices=("a", "b"))
    tags: list = setting(help="labels", factory=list, cli=False)
    ratio: float | None = setting(None, "optional", min=0)

    def __post_init__(self):
        check_settings(self)


def test_defaults_and_metadata():
    f = {x.name: x for x in fields(Demo)}
    assert default_of(f["steps"]) == 10 and default_of(f["tags"]) == [] and default_of(f["ratio"]) is None
    assert f["steps"].metadata["help"] == "how many" and f["tags"].metadata["cli"] is False


def test_bounds_choices_and_unknown_keys_are_named():
    with pytest.raises(SettingsError, match=r"Demo.steps must be >= 1, got 0"):
        Demo(steps=0)
    with pytest.raises(SettingsError, match=r"Demo.steps must be <= 100"):
        Demo(steps=101)
    with pytest.raises(SettingsError, match=r"Demo.mode must be one of \['a', 'b'\], got 'c'"):
        Demo(mode="c")
    with pytest.raises(SettingsError, match=r"Demo.ratio must be >= 0"):
        Demo(ratio=-1.0)
    with pytest.raises(SettingsError, match=r"unknown setting\(s\) stepz in my.yaml; known: mode, ratio, steps, tags"):
        from_dict(Demo, {"stepz": 3}, "my.yaml")
    with pytest.raises(SettingsError, match="expected a mapping"):
        from_dict(Demo, [1], "my.yaml")
    assert from_dict(Demo, {"steps": 5, "mode": "b"}) == Demo(steps=5, mode="b")
