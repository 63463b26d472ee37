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


def test_an_option_carries_its_own_chinese_title_and_help():
    opt = Option("ngram", int, 3, "Characters per n-gram.", low=1, high=5, runtime=True, label="n-gram",
                 label_zh="n 元长度", why_zh="每个 n 元组的字符数。")
    assert (opt.title_in("zh"), opt.why_in("zh")) == ("n 元长度", "每个 n 元组的字符数。")
    assert (opt.title_in("en"), opt.why_in("en")) == ("n-gram", "Characters per n-gram.")
    # declared without Chinese: the English shows in a Chinese interface, nothing fails
    bare = Option("sif_a", float, 1e-3, "SIF's a.", runtime=True)
    assert (bare.title_in("zh"), bare.why_in("zh")) == ("sif a", "SIF's a.")


def test_option_json_round_trip_keeps_every_field():
    for opt in (*SPECS, Option("n", int, 3, "How many.", low=1, high=5, runtime=True, label="count",
                               label_zh="数量", why_zh="多少个。")):
        assert Option.from_json(opt.as_json()) == opt
    # an older server's answer (no Chinese fields) still reads
    old = {k: v for k, v in SPECS[0].as_json().items() if k not in ("label_zh", "why_zh")}
    assert Option.from_json(old) == SPECS[0]


def test_positional_construction_is_unchanged():
    """The HTTP client builds options positionally up to ``label``; new fields come after it."""
    opt = Option("layer", int, -2, "which layer", None, -7, 6, True, "layer")
    assert (opt.low, opt.high, opt.runtime, opt.label, opt.label_zh, opt.why_zh) == (-7, 6, True, "layer", "", "")
