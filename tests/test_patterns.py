"""Pure filename-pattern parsing: syntaxes, inference, index rules and the file grid."""

from __future__ import annotations

import pytest

from ome_arrow_dask.errors import ResourceLimitError, UnsafePathError
from ome_arrow_dask.sources import patterns as P
from ome_arrow_dask.sources.patterns import PatternError

LLSM = (
    "ex6-2_CamA_ch{c}_CAM1_stack{t:04d}_{wl}nm_{ms:07d}msec_{abs:010d}msecAbs_{x:03d}x_{y:03d}y_{z:03d}z_{t:04d}t.tif"
)


def llsm_names(missing=()):
    names = []
    for t in range(2):
        for c, wl in enumerate((488, 560)):
            for x in range(2):
                for y in range(3):
                    if (t, c, x, y) in missing:
                        continue
                    ms = 1000 * t + 10 * c + x + y
                    names.append(LLSM.format(c=c, t=t, wl=wl, ms=ms, abs=ms + 123456, x=x, y=y, z=0))
    return names


def axes_of(pattern):
    return {f.label: f.axis for f in pattern.fields}


# --------------------------------------------------------------------------- syntax detection
@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        (r"a_(?P<z>\d+)\.tif", "regex"),
        ("E99_C<111,222>_ZS<000-021>.tif", "brackets"),
        ("img_{z}.tif", "template"),
        ("img_{t:04d}_{}.tif", "template"),
        ("*.tif", "glob"),
        (r"E99_ZS.*\.tif", "glob"),
        (r"img_\d{4}\.tif", "glob"),
    ],
)
def test_detect_syntax(text, syntax):
    assert P.detect_syntax(text) == syntax


# --------------------------------------------------------------------------- templates
def test_template_llsm_fields_and_match():
    p = P.compile_template(
        "ex6-2_CamA_ch{c}_CAM1_stack{t}_{}nm_{}msec_{}msecAbs_{x}x_{y}y_{z}z_{}t.tif",
    )
    assert [f.axis for f in p.fields] == ["C", "T", None, None, None, "X", "Y", "Z", None]
    name = llsm_names()[7]
    (matched,) = p.match([name, "other.tif"])
    groups = matched[1]
    values = {f.axis: groups[f.group] for f in p.fields if f.axis}
    assert values == {"C": "1", "T": "0000", "X": "000", "Y": "001", "Z": "000"}


def test_template_format_spec_fixes_width():
    p = P.compile_template("z{z:03d}.tif")
    assert [n for n, _ in p.match(["z001.tif", "z1.tif", "z0001.tif"])] == ["z001.tif"]
    assert [n for n, _ in P.compile_template("z{z:d}.tif").match(["z1.tif", "z0001.tif"])] == ["z1.tif", "z0001.tif"]


def test_template_channel_text_values():
    p = P.compile_template("img_{c}_z{z}.tif")
    grid = P.build_grid(p, ["img_GFP_z0.tif", "img_DAPI_z0.tif", "img_GFP_z1.tif", "img_DAPI_z1.tif"])
    assert grid.shape == (1, 2, 2, 1, 1)
    assert grid.channel_names() == ("DAPI", "GFP")


@pytest.mark.parametrize("bad", ["img_{q}.tif", "img_{zz}.tif", "img_{z:x}.tif"])
def test_template_bad_fields(bad):
    with pytest.raises(PatternError):
        P.compile_template(bad)


def test_template_same_axis_twice_is_refused():
    with pytest.raises(PatternError, match="both map to axis T"):
        P.compile_template("stack{t}_{t}t.tif")


# --------------------------------------------------------------------------- brackets
def test_bracket_choices_ranges_lists_and_padding():
    assert dict(P.bracket_choices("000-002")) == {"000": 0, "001": 1, "002": 2}
    assert dict(P.bracket_choices("0-10:5")) == {"00": 0, "05": 1, "10": 2, "0": 0, "5": 1}
    assert P.bracket_choices("488, 560") == (("488", 0), ("560", 1))
    with pytest.raises(PatternError, match="invalid range"):
        P.bracket_choices("5-2")
    with pytest.raises(PatternError, match="empty choice"):
        P.bracket_choices("a,,b")


@pytest.mark.parametrize(
    ("letters", "axis"),
    [
        *[("c", "C"), ("ch", "C"), ("w", "C"), ("Wavelength", "C"), ("t", "T"), ("tp", "T"), ("TL", "T")],
        *[("timepoint", "T"), ("z", "Z"), ("ZS", "Z"), ("sec", "Z"), ("fp", "Z"), ("focalplane", "Z")],
        *[("s", "T"), ("series", "T"), ("d", "C"), ("", "C")],
    ],
)
def test_bracket_axis_tokens_follow_ome_arrow(letters, axis):
    p = P.compile_brackets(f"img_{letters}<0-1>.tif")
    assert p.fields[0].axis == axis


def test_bracket_grid_positions_come_from_the_pattern():
    p = P.compile_brackets("E99_C<111,222>_ZS<000-003>.tif")
    names = [f"E99_C{c}_ZS{z:03d}.tif" for c in (111, 222) for z in range(3)]  # ZS003 absent for both
    grid = P.build_grid(p, names)
    assert grid.shape == (1, 2, 4, 1, 1)
    assert grid.missing == ((0, 0, 3, 0, 0), (0, 1, 3, 0, 0))
    assert grid.channel_names() == ("C111", "C222")


def test_bracket_text_channels_keep_their_names():
    p = P.compile_brackets("img_w<DAPI,GFP>_z<0-1>.tif")
    grid = P.build_grid(p, [f"img_w{c}_z{z}.tif" for c in ("GFP", "DAPI") for z in range(2)])
    assert grid.channel_names() == ("DAPI", "GFP")


def test_bracket_literal_parts_allow_wildcards():
    p = P.compile_brackets("*_z<0-1>.tif")
    assert [n for n, _ in p.match(["a_z0.tif", "b_z1.tif", "a_z2.tif"])] == ["a_z0.tif", "b_z1.tif"]


# --------------------------------------------------------------------------- regex
def test_regex_named_groups_any_case_and_extra_groups_ignored():
    p = P.compile_regex(r".*_ch(?P<c>\d+)_.*_stack(?P<T>\d+)_(?P<stamp>\d+)msec.*\.tif")
    assert [(f.group, f.axis) for f in p.fields] == [("c", "C"), ("T", "T"), ("stamp", None)]


@pytest.mark.parametrize("bad", [r"(a+)+$", r"(\d*)*x", r"((ab)*c)+", "x" * 1001, "(unclosed"])
def test_regex_unsafe_or_invalid_is_refused(bad):
    with pytest.raises(PatternError):
        P.compile_regex(bad)


def test_regex_without_named_groups_is_inferred_like_ome_arrow_regex_mode():
    names = [f"E99_C111_ZS{z:03d}.tif" for z in range(22)] + [f"E99_C222_ZS{z:03d}.tif" for z in range(22)]
    pattern, grid = P.grid_for(r"E99_C111_ZS.*\.tif", names)
    assert grid.shape == (1, 1, 22, 1, 1)
    assert pattern.syntax == "inferred"


# --------------------------------------------------------------------------- inference
def test_infer_llsm_names():
    pattern = P.infer_pattern("*.tif", llsm_names())
    found = {f.label: (f.axis, f.note) for f in pattern.fields if f.note}
    assert found["ch#"][0] == "C"
    assert found["stack#"][0] == "T"
    assert found["#nm"][0] is None and "same as" in found["#nm"][1]  # 488/560 follows ch0/ch1
    assert found["#msec"] == (None, "timestamp")
    assert found["#msecAbs"] == (None, "timestamp")
    assert found["#x"][0] == "X" and found["#y"][0] == "Y"
    assert found["#t"][0] is None  # 0000t follows stack0000
    grid = P.build_grid(pattern, llsm_names())
    assert grid.shape == (2, 2, 1, 3, 2)
    assert grid.channel_names() == ("ch0", "ch1")


def test_infer_opera_phenix_names():
    names = [f"r02c05f01p{z:02d}-ch{c}sk{t}fk1fl1.tiff" for z in range(1, 4) for c in (1, 2) for t in (1, 2)]
    grid = P.build_grid(P.infer_pattern("*.tiff", names), names)
    assert grid.shape == (2, 2, 3, 1, 1)


def test_infer_unpadded_numbers_sort_naturally():
    names = [f"img_z{z}.tif" for z in range(12)]
    _, grid = P.grid_for("*.tif", sorted(names))
    assert [n for _, n in grid.files] == names  # z0, z1, ..., z11 (sorted() gives z0, z1, z10, z11, z2)


def test_infer_single_unlabelled_field_becomes_z():
    _, grid = P.grid_for("*.tif", ["a_001.tif", "a_002.tif", "a_003.tif"])
    assert grid.shape == (1, 1, 3, 1, 1)


def test_infer_unlabelled_field_that_follows_others_is_ignored():
    names = [f"img_t{t}_{1000 + 7 * t}.tif" for t in range(4)]
    pattern, grid = P.grid_for("*.tif", names)
    assert grid.shape == (4, 1, 1, 1, 1)
    assert [f.note for f in pattern.fields if f.label == "#"] == ["follows the other fields"]


def test_infer_two_unlabelled_fields_is_an_error():
    names = [f"img_{a}_{b}.tif" for a in range(2) for b in range(2)]
    with pytest.raises(PatternError, match="no axis letters"):
        P.grid_for("*.tif", names)


def test_infer_two_independent_fields_on_one_axis_is_an_error():
    names = [f"img_z{a}_{b}z.tif" for a in range(2) for b in range(2)]
    with pytest.raises(PatternError, match="both look like axis Z"):
        P.grid_for("*.tif", names)


def test_infer_needs_one_name_structure():
    with pytest.raises(PatternError, match="do not share one structure"):
        P.grid_for("*.tif", ["a_z1.tif", "b_z1.tif"])


# --------------------------------------------------------------------------- index rules and grid
def test_axis_index_map_rules():
    f = P.Field
    assert P.axis_index_map(f("g", "T", "t"), ["2", "10", "3"])[1] == tuple(str(v) for v in range(2, 11))
    assert P.axis_index_map(f("g", "C", "c"), ["10", "2"])[0] == {"2": 0, "10": 1}
    assert P.axis_index_map(f("g", "Z", "z"), ["0.5", "1.0"])[2] == "categories in natural order"
    lookup, labels, rule = P.axis_index_map(f("g", "Y", "y"), ["0", "256", "768"])
    assert lookup == {"0": 0, "256": 1, "768": 3} and len(labels) == 4 and "steps of 256" in rule


def test_build_grid_duplicates_are_an_error():
    p = P.compile_template("z{z}_{}.tif")
    with pytest.raises(PatternError, match="same position"):
        P.build_grid(p, ["z0_a.tif", "z0_b.tif"])


def test_build_grid_no_match():
    with pytest.raises(PatternError, match="no files match"):
        P.grid_for("img_{z}.tif", ["other.tif"])


def test_build_grid_refuses_absurd_grids():
    p = P.compile_template("t{t}_z{z}.tif")
    with pytest.raises(ResourceLimitError, match="grid of"):
        P.build_grid(p, ["t0_z0.tif", "t99999_z99999.tif"])


def test_missing_positions_are_described():
    p = P.compile_template("ch{c}_z{z}.tif")
    grid = P.build_grid(p, ["ch0_z0.tif", "ch0_z1.tif", "ch1_z0.tif"])
    assert grid.missing == ((0, 1, 1, 0, 0),)
    assert grid.describe_position(grid.missing[0]) == "c=1 (ch1), z=1 (z1)"


@pytest.mark.parametrize("text", ["../x_{z}.tif", "/etc/*", "a/../../b<0-1>.tif"])
def test_patterns_cannot_leave_the_folder(text):
    with pytest.raises(UnsafePathError):
        P.compile_pattern(text)


def test_pattern_with_subfolder_is_refused():
    with pytest.raises(PatternError, match="folder separator"):
        P.compile_pattern("sub/x_{z}.tif")


def test_no_match_shows_what_the_folder_holds():
    """A pattern with a typo (``Z{z}`` for ``ZS{z}``) says which files the folder does hold.

    Before: only "no files match 'E99_C{c}_Z{z}.tif'", with nothing to compare the pattern to.
    """
    names = [f"E99_C{c}_ZS{z:03d}.tif" for c in (111, 222) for z in range(3)]
    expected = r"no files match 'E99_C\{c\}_Z\{z\}\.tif'; the folder holds 6 files, e\.g\. 'E99_C111_ZS000\.tif'"
    with pytest.raises(PatternError, match=expected):
        P.grid_for("E99_C{c}_Z{z}.tif", names)
    with pytest.raises(PatternError, match=r"no files match 'E99_C333_\*\.tif'; the folder holds 6 files"):
        P.grid_for("E99_C333_*.tif", names)
    with pytest.raises(PatternError, match="the folder holds no files"):
        P.grid_for("img_{z}.tif", [])
