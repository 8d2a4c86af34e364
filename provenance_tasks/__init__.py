"""Build, push, sign with provenance annotations, and verify container images: invoke tasks.

Importing this package is cheap on purpose: `invoke --list` pays for every import at the top of a
task module, so docker, cosign, tenacity and structlog are imported inside the steps that use them.
"""

from __future__ import annotations

__version__ = "0.1.0"
