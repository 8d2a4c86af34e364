"""The registry, reached one way: `Registry` (client.py), over its HTTP API (the distribution
spec) with the run's docker login, `docker buildx imagetools` behind it where that can't serve.

- `client.py`: `Registry`, the calls the steps make, and the fallback to imagetools;
- `http.py`: the login from the docker config, TLS, one request;
- `failures.py`: a failed request in the words docker and cosign use (and its Retry-After);
- `keepalive.py`: the kept-alive connections those requests share;
- `layout.py`: an OCI layout folder, read as what to push in which order;
- `push.py`: a push of that layout by digest, a tag published or deleted;
- `copy.py`: a manifest and all it references copied to another repository (promote);
- `referrers.py`: cosign 3's bundles, as a client finds them (the referrers API or its tag).
"""

from provenance_tasks.adapters.registry.client import Imagetools, Registry, Unserved
from provenance_tasks.adapters.registry.copy import Copied
from provenance_tasks.adapters.registry.push import PushedImage
from provenance_tasks.adapters.registry.referrers import (
    PROBE_DIGEST,
    Referrer,
    Repair,
    fallback_tag,
)

__all__ = [
    "PROBE_DIGEST",
    "Copied",
    "Imagetools",
    "PushedImage",
    "Referrer",
    "Registry",
    "Repair",
    "Unserved",
    "fallback_tag",
]
