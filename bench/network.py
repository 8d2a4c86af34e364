"""The network both sides of a pair go through: loopback as it is, or a named profile of
`bench/profiles.toml` put in front of the registry and of Sigstore by the test bed's proxy.

Under a profile, every client talks to the proxies: buildx and docker push through the
registry's, cosign and provenance-tasks sign through Sigstore's (a signing config rewritten to
name it, for the shell jobs). The registry behind it is the test bed's plain one: the proxy
speaks HTTP, and the profile's handshake round trips stand for TLS.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

from tests.testbed import sigstore as sigstore_bed
from tests.testbed.bed import TestBed
from tests.testbed.faultproxy import FaultProxy
from tests.testbed.netprofile import Shaper, load


class Network:
    def __init__(
        self,
        profile: str | None,
        testbed: TestBed,
        sigstore: sigstore_bed.Sigstore | None,
        work: Path,
    ) -> None:
        self.name = profile or "loopback"
        self.testbed, self.sigstore, self.work = testbed, sigstore, work
        self.shapers: dict[str, Shaper] = {}
        self.proxies: dict[str, FaultProxy] = {}
        if profile:
            links = load(profile)
            self.shapers["registry"] = Shaper(links.registry)
            self.proxies["registry"] = FaultProxy(
                testbed.plain_registry, shaper=self.shapers["registry"]
            )
            if sigstore is not None:
                self.shapers["sigstore"] = Shaper(links.sigstore, sigstore=True)
                upstream = sigstore.url.removeprefix("http://")
                self.proxies["sigstore"] = FaultProxy(upstream, shaper=self.shapers["sigstore"])

    def __enter__(self) -> Network:
        for proxy in self.proxies.values():
            proxy.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for proxy in self.proxies.values():
            proxy.stop()

    @property
    def registry(self) -> str:
        """host:port the jobs push to."""
        proxy = self.proxies.get("registry")
        return proxy.address if proxy else self.testbed.secure_registry

    @property
    def sigstore_url(self) -> str:
        assert self.sigstore is not None
        proxy = self.proxies.get("sigstore")
        return f"http://{proxy.address}" if proxy else self.sigstore.url

    def signing_config(self) -> Path:
        """The test bed's signing config, naming the proxy where there is one."""
        assert self.sigstore is not None
        if "sigstore" not in self.proxies:
            return self.sigstore.signing_config
        path = self.work / "signing_config.json"
        if not path.exists():
            text = self.sigstore.signing_config.read_text()
            path.write_text(text.replace(self.sigstore.url, self.sigstore_url))
            json.loads(path.read_text())  # still JSON
        return path

    def reset(self) -> None:
        for shaper in self.shapers.values():
            shaper.reset()

    def requests(self) -> dict[str, int]:
        """Requests per service since the last reset: what a run asked of the network."""
        counts: dict[str, int] = {}
        for shaper in self.shapers.values():
            for service, seen in shaper.stats().items():
                counts[service] = counts.get(service, 0) + seen.requests
        return dict(sorted(counts.items()))
