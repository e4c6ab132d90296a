"""`Registry`: names in registration order, aliases, duplicates refused, one-line errors listing the names."""

from __future__ import annotations

import pytest

from trtq.errors import UsageError
from trtq.registry import Registry


@pytest.fixture
def reg() -> Registry[int]:
    r: Registry[int] = Registry("colour", "--colour")
    r.register("red", 1)
    r.register("green", 2)
    return r


def test_entries_in_registration_order(reg):
    reg.register("blue", 3)
    assert reg.names() == list(reg) == ["red", "green", "blue"] and len(reg) == 3
    assert reg.items() == [("red", 1), ("green", 2), ("blue", 3)]
    assert reg.get("green") == reg["green"] == 2


def test_duplicates_and_empty_names_are_refused_unless_replacing(reg):
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        reg.register("red", 9)
    reg.alias("r", "red")
    with pytest.raises(ValueError, match="colour 'r' is registered twice"):
        reg.register("r", 9)
    with pytest.raises(ValueError, match="needs a non-empty string name"):
        reg.register("", 9)
    with pytest.raises(ValueError, match="needs a non-empty string name"):
        reg.register(None, 9)  # type: ignore[arg-type]
    assert reg.register("red", 9, replace=True) == 9 and reg["red"] == 9 and reg.names() == ["red", "green"]


def test_aliases_resolve_everywhere_but_are_not_listed(reg):
    reg.alias("r", "red")
    assert reg["r"] == 1 and "r" in reg and reg.canonical("r") == "red" and reg.canonical("pink") == "pink"
    assert reg.names() == ["red", "green"] and reg.aliases() == {"r": "red"}
    with pytest.raises(ValueError, match="cannot alias 'p' to unregistered colour 'pink'"):
        reg.alias("p", "pink")
    with pytest.raises(ValueError, match="colour name 'green' is registered twice"):
        reg.alias("green", "red")
    with pytest.raises(ValueError, match="colour name 'r' is registered twice"):
        reg.alias("r", "green")


def test_unknown_names_are_one_line_usage_errors_naming_the_option_and_the_choices(reg):
    with pytest.raises(UsageError) as e:
        reg.get("pink")
    assert str(e.value) == "--colour 'pink' is not a registered colour; choose from red, green"
    assert (
        Registry("shape").unknown_message("cube")
        == "shape 'cube' is not a registered shape; choose from (none)"
    )
    assert 3 not in reg and "pink" not in reg


def test_unregister_removes_the_entry_and_its_aliases(reg):
    reg.alias("r", "red")
    reg.unregister("red")
    assert reg.names() == ["green"] and reg.aliases() == {} and "r" not in reg
    reg.unregister("never-registered")  # harmless
    reg.register("red", 5)  # the name is free again
    assert reg.names() == ["green", "red"]


def test_the_decorator_registers_what_it_decorates(reg):
    @reg.decorator("purple")
    def purple() -> int:
        return 7

    assert reg["purple"] is purple and purple() == 7
    with pytest.raises(ValueError, match="registered twice"):
        reg.decorator("purple")(purple)
    assert reg.decorator("purple", replace=True)(len) is len and reg["purple"] is len
