"""This repository's tasks: the provenance collection itself.

invoke --list
invoke build-sign-verify --context examples/hello
"""

from provenance_tasks.tasks import ns  # noqa: F401 - invoke loads `ns`
