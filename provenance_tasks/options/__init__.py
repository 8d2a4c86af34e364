"""Every setting, declared once: its key, default, help and the tasks that take it as a flag.

`settings.py` combines flags, environment and invoke.yaml into one `Settings` from this table;
`tasks/image.py` makes each task's flags from it, so a flag's name and help live here only. The
README's settings reference is generated from it (`python -m tests.readme --write`).

The table is in three parts, in the order `--help` lists them: `build.py` (what buildx is told),
`signing.py` (the signer, the Sigstore, what verify expects) and `run.py` (registry and tools,
retries, many images, outputs). `option.py` says what a setting is, and names the task groups.
"""

from __future__ import annotations

from provenance_tasks.options.build import BUILD
from provenance_tasks.options.option import Option
from provenance_tasks.options.run import RUN
from provenance_tasks.options.signing import SIGNING

__all__ = ["OPTIONS", "Option"]

#: Every setting, in the order `--help` lists them. Tasks take a flag only where they use it;
#: the rest are config-only (invoke.yaml, INVOKE_PROVENANCE_*).
OPTIONS: tuple[Option, ...] = (*BUILD, *SIGNING, *RUN)
