"""``batch-runner run`` flags for where results go and how operators watch: publishing to
object storage, the live gallery, metrics, notifications. Parsing only: the library does the work
(:class:`~batch_runner.engine.options.RunOptions` for publishing,
:class:`~batch_runner.report.operate.RunWatch` for the rest)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .args import positive_float, positive_int


def add_operator_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("publishing, gallery, metrics and notifications")
    group.add_argument(
        "--publish",
        metavar="URL",
        help="upload every verified output to this object-store prefix (s3://bucket/prefix, "
        "gs://, az://, file:///path; default: the manifest's publish); credentials from the "
        "store's environment variables",
    )
    group.add_argument(
        "--publish-concurrency",
        type=positive_int,
        default=4,
        metavar="N",
        help="files uploaded at once (default 4)",
    )
    group.add_argument(
        "--publish-public-url",
        metavar="URL",
        help="the https address the published prefix is served from (a CDN, a public "
        "bucket): recorded as each output's public_url",
    )
    group.add_argument(
        "--gallery-links",
        choices=("local", "published"),
        default="local",
        help="what the gallery's pages link to: the local files (default), or the published "
        "copies where an output has a public https address (--publish-public-url), to share",
    )
    group.add_argument(
        "--gallery-interval",
        type=_seconds_or_zero,
        default=5.0,
        metavar="S",
        help="rewrite the gallery during the run at most every S seconds, its pages "
        "reloading themselves in the browser (default 5; 0: only when the run ends)",
    )
    group.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="write Prometheus metrics here during the run and at its end (node_exporter's "
        "textfile collector: PATH ending in .prom)",
    )
    group.add_argument(
        "--metrics-interval",
        type=positive_float,
        default=10.0,
        metavar="S",
        help="seconds between metrics file updates (default 10)",
    )
    group.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the metrics to this Prometheus Pushgateway when the run ends",
    )
    group.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="send a message when the run ends, to any apprise URL (slack://, mailto://, "
        "ntfy://, discord://, json://, ...); repeatable",
    )


def publish_options(args: argparse.Namespace) -> dict[str, Any]:
    """RunOptions fields from the flags."""
    return {
        "publish": args.publish,
        "publish_concurrency": args.publish_concurrency,
        "publish_public_url": args.publish_public_url,
    }


def watch_options(args: argparse.Namespace) -> dict[str, Any]:
    """RunWatch arguments from the flags."""
    return {
        "log_format": args.log_format,
        "quiet": args.quiet,
        "metrics_file": args.metrics_file,
        "metrics_interval": args.metrics_interval,
        "pushgateway": args.pushgateway,
        "notify": args.notify,
        "notify_url": args.notify_url,
        "gallery_links": args.gallery_links,
        "gallery_interval": args.gallery_interval,
    }


def _seconds_or_zero(text: str) -> float:
    """A positive number of seconds, or 0 (off)."""
    try:
        if float(text) == 0:
            return 0.0
    except ValueError:
        pass
    return positive_float(text)
