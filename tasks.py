"""This repository's tasks: the provenance collection itself, plus the test bed for development.

invoke --list
invoke testbed.up            real services on loopback: an engine, registries, a Sigstore
invoke build-sign-verify      the example (invoke.yaml), to the test bed's localhost:5000

The test bed lives in tests/testbed and never ships in the wheel: a consumer's `invoke --list`
shows only the provenance tasks.
"""

from invoke.collection import Collection

import provenance_tasks.tasks
from tests.testbed.tasks import ns as testbed

# A copy of the published collection, so adding the test bed here never changes it for others.
ns = Collection.from_module(provenance_tasks.tasks)
ns.add_collection(testbed)
