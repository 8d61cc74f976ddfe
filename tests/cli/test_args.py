"""The shared argument helpers of the tool commands."""

from __future__ import annotations

import argparse

import pytest

from densemtl.cli.args import parse_intrinsics, parse_size, positive_int
from densemtl.errors import ConfigError


def test_parse_size_square_and_height_by_width() -> None:
    assert parse_size("480") == (480, 480)
    assert parse_size("480x640") == (480, 640)
    assert parse_size("480X640") == (480, 640)
    for bad in ("480by640", "0x640", "480x", "1x2x3", "-4"):
        with pytest.raises(ConfigError, match="--size must be HEIGHTxWIDTH"):
            parse_size(bad)


def test_positive_int_and_intrinsics() -> None:
    assert positive_int("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integer"):
            positive_int(bad)
    assert parse_intrinsics("500,500,319.5,239.5") == [500.0, 500.0, 319.5, 239.5]
    with pytest.raises(ConfigError, match="FX,FY,CX,CY"):
        parse_intrinsics("500,500")


def test_one_vocabulary_sizes_and_tasks() -> None:
    from densemtl.cli.args import parse_tasks

    assert parse_size("[96,128]") == parse_size("96x128") == parse_size([96, 128]) == (96, 128)
    assert parse_tasks("semseg,depth") == parse_tasks("[semseg,depth]") == ["semseg", "depth"]
    assert parse_tasks(["semseg", "depth,normals"]) == ["semseg", "depth", "normals"]


def test_every_tool_option_has_one_spelling_and_old_ones_still_parse(capsys: pytest.CaptureFixture) -> None:
    from densemtl.cli import TOOLS, build_parser, main

    parser = build_parser()
    tools = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in TOOLS:
        for action in tools[name]._actions:
            for option in action.option_strings:
                if option.startswith("--"):
                    assert "-" not in option[2:], (name, option)
                    assert option not in ("--ckpt", "--teacher", "--out", "--json", "--dataset-root"), (
                        name,
                        option,
                    )
    args = parser.parse_args(
        ["predict", "--ckpt", "a.ckpt", "--input", "x", "--output", "y", "--max-frames", "3"]
    )
    assert (args.ckpt, args.max_frames) == ("a.ckpt", 3)
    args = parser.parse_args(
        ["distill", "--teacher", "t.ckpt", "--dataset", "d", "--task", "semseg", "--out", "o"]
    )
    assert (args.teacher, args.dataset_root, str(args.out)) == ("t.ckpt", "d", "o")
    args = parser.parse_args(
        ["evaluate", "--predictions", "p", "--data.root", "d", "--tasks", "semseg,depth"]
    )
    assert str(args.dataset_root) == "d" and args.tasks == ["semseg,depth"]
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    assert "--ckpt_path" in text and "--max_frames" in text and "--max-frames" not in text
    assert "(default: cpu)" in text and "(default: 1)" in text  # --device, --stride
