#!/usr/bin/env bash
# The GitHub action's logic (action.yml runs it): the tool at the pinned version unless one is
# installed, then the task. The tool itself writes its outputs to $GITHUB_OUTPUT (image_ref,
# image_digest, image_published...), masks secrets, groups its steps, and asks the runner's
# token endpoint for an ID token when it signs keyless.
set -euo pipefail
task="${PROVENANCE_TASK:-build-sign-verify}"
case "$task" in
    build-sign-verify|build|sign|verify|attest|verify-attestation|publish) ;;
    *) echo "::error::provenance-tasks: no such task: $task"; exit 2 ;;
esac
if ! command -v cosign >/dev/null; then
    echo "::error::cosign is not on PATH: add sigstore/cosign-installer before this action"
    exit 2
fi
if ! command -v provenance-tasks >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check \
        "${PROVENANCE_TASKS_PACKAGE:-provenance-tasks==${PROVENANCE_TASKS_VERSION:?}}"
fi
provenance-tasks --version
exec provenance-tasks "$task"
