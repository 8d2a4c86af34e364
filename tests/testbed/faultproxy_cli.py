"""The fault proxy as a process: `python -m tests.testbed.faultproxy --upstream HOST:PORT ...`
prints its port, then proxies until SIGTERM or SIGINT and logs its fault counts."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from tests.testbed import netprofile
from tests.testbed.faultproxy import FaultProxy
from tests.testbed.faults import KINDS, Faults


def _kind_weight(text: str) -> tuple[str, float]:
    kind, _, weight = text.partition("=")
    if kind not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown kind {kind!r}: choose from {', '.join(KINDS)}")
    return kind, float(weight or 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.testbed.faultproxy",
        description="A loopback reverse proxy in front of a registry that injects faults. "
        "Prints the port it listens on, then serves until SIGINT or SIGTERM.",
    )
    parser.add_argument("--upstream", default="127.0.0.1:5000", help="registry host:port (HTTP)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--rate", type=float, default=0.0, help="share of requests faulted, 0..1")
    parser.add_argument(
        "--kind",
        type=_kind_weight,
        action="append",
        metavar="KIND[=WEIGHT]",
        help=f"fault kind to draw, repeatable (default 503, 429, drop); one of {', '.join(KINDS)}",
    )
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--only", help='regex on "METHOD path" limiting which requests fault')
    parser.add_argument("--always", choices=KINDS, help="answer every request with this kind")
    parser.add_argument(
        "--profile", help="a network profile of bench/profiles.toml (lan, cloud, far) to apply"
    )
    parser.add_argument(
        "--service",
        choices=("registry", "sigstore"),
        default="registry",
        help="which of the profile's links upstream is (sigstore: routed by path)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
    )
    faults = Faults(
        rate=args.rate,
        kinds=dict(args.kind) if args.kind else Faults().kinds,
        slow_seconds=args.slow_seconds,
        seed=args.seed,
        only=args.only,
    )
    shaper = None
    if args.profile:
        try:
            profile = netprofile.load(args.profile)
        except ValueError as error:
            parser.error(str(error))
        sigstore = args.service == "sigstore"
        link = profile.sigstore if sigstore else profile.registry
        shaper = netprofile.Shaper(link, sigstore=sigstore)
    proxy = FaultProxy(args.upstream, args.port, faults, shaper).start()
    if args.always:
        proxy.always(args.always)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(proxy.port, flush=True)
    done.wait()
    proxy.stop()
    stats = proxy.stats()
    print(
        f"seen {stats.seen}, forwarded {stats.forwarded}, faults {stats.faults}",
        file=sys.stderr,
    )
    if shaper is not None:
        for name, seen in shaper.stats().items():
            print(f"{name}: {seen}", file=sys.stderr)
    return 0
