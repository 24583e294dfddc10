"""Argument types and output flags shared by the subcommands."""

from __future__ import annotations

import argparse
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def duration_seconds(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` -> seconds."""
    found = _DURATION.match(text)
    if not found or float(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90, 15m or 2h, not {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2).lower()]


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only errors and the final summary")  # fmt: skip
    parser.add_argument("--log-format", choices=("auto", "text", "json"), default="auto",
                        help="progress on stderr: live display on a terminal (auto), "
                        "timestamped lines (text) or one JSON object per event (json)")  # fmt: skip
