"""backend.options: options declared once, checked in one place, with messages that say what is allowed."""

from __future__ import annotations

import pytest

from backend.options import Option, OptionError, defaults, parse_model_arg, validate_options

SPECS = (
    Option("layer", int, -2, "which layer", low=-7, high=6, runtime=True),
    Option("pooling", str, "mean", "how", choices=("mean", "cls"), runtime=True),
    Option("remove_pc", bool, True, "pc", runtime=True),
    Option("sif_a", float, 1e-3, "a", low=1e-6, high=1.0, runtime=True),
    Option("max_tokens", int, 256, "limit", low=8, high=512),
)


def test_values_are_converted_from_text():
    got = validate_options(SPECS, {"layer": "-1", "pooling": "cls", "remove_pc": "false", "sif_a": "0.01"})
    assert got == {"layer": -1, "pooling": "cls", "remove_pc": False, "sif_a": 0.01}
    assert validate_options(SPECS, {"layer": -1.0}) == {"layer": -1}
    assert defaults(SPECS)["max_tokens"] == 256


@pytest.mark.parametrize(("given", "message"), [
    ({"colour": "red"}, "unknown option 'colour' (known: layer, max_tokens, pooling, remove_pc, sif_a)"),
    ({"layer": 9}, "option 'layer' must be within -7..6, not 9"),
    ({"layer": 1.5}, "option 'layer' must be int, not 1.5"),
    ({"layer": True}, "option 'layer' must be int"),
    ({"pooling": "median"}, "option 'pooling' must be one of 'mean', 'cls', not 'median'"),
    ({"remove_pc": "maybe"}, "option 'remove_pc' must be bool"),
    ({"sif_a": 2}, "option 'sif_a' must be within 1e-06..1, not 2"),
])
def test_bad_values_name_what_is_allowed(given, message):
    with pytest.raises(OptionError) as e:
        validate_options(SPECS, given, "bert")
    assert str(e.value).startswith("bert: ") and message in str(e.value)


def test_load_time_options_cannot_change_per_request():
    with pytest.raises(OptionError, match=r"set when the model loads.*run-time options: layer, pooling, remove_pc, sif_a"):
        validate_options(SPECS, {"max_tokens": 64}, "bert", runtime_only=True)


def test_parse_model_arg():
    assert parse_model_arg("bert:layer=-1:pooling=cls") == ("bert", {"layer": -1, "pooling": "cls"})
    assert parse_model_arg(" w2v ") == ("w2v", {})
    with pytest.raises(OptionError, match="use key:option=value"):
        parse_model_arg("bert:=3")


def test_every_family_declares_its_options_with_a_reason():
    """Each family's options are data: a type, a default that passes its own check, and one line of why."""
    from backend.families import family_class
    from backend.registry import Registry

    for family in sorted({s.family for s in Registry.load()}):
        for opt in family_class(family).OPTIONS:
            assert opt.why and opt.why[0].isupper() and opt.why.endswith("."), (family, opt.name)
            assert opt.check(opt.default) == opt.default, (family, opt.name)
