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
