"""Build, push, sign with provenance annotations, and verify container images: invoke tasks,
and the Python API they are made of.

    from provenance_tasks import Provenance

    with Provenance.open(c) as run:
        image = run.build(stage=True)
        run.sign(image)
        run.verify(image)
        run.publish(image)

Importing this package is cheap on purpose: `invoke --list` pays for every import at the top of a
task module, so the API, docker, cosign, tenacity and structlog are imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from provenance_tasks.api import Provenance
    from provenance_tasks.errors import (
        InputError,
        ProvenanceError,
        ToolError,
        VerificationError,
    )
    from provenance_tasks.results import Attested, Built, Published, Signed, Verification

_LAZY = {
    "Provenance": "provenance_tasks.api",
    "Built": "provenance_tasks.results",
    "Signed": "provenance_tasks.results",
    "Attested": "provenance_tasks.results",
    "Verification": "provenance_tasks.results",
    "Published": "provenance_tasks.results",
    "ProvenanceError": "provenance_tasks.errors",
    "InputError": "provenance_tasks.errors",
    "VerificationError": "provenance_tasks.errors",
    "ToolError": "provenance_tasks.errors",
}

__all__ = [
    "Attested",
    "Built",
    "InputError",
    "Provenance",
    "ProvenanceError",
    "Published",
    "Signed",
    "ToolError",
    "Verification",
    "VerificationError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
