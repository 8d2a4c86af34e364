#!/usr/bin/env bash
# The GitHub action's logic (action.yml runs it): the tool from this action's own source (at the
# ref the workflow pinned) into a venv of the job, unless one is installed; then the task, with
# only the inputs given as flags, so the rest stay invoke.yaml's. The tool itself writes its
# outputs to $GITHUB_OUTPUT (image_ref, image_digest, image_published...), masks secrets, groups
# its steps, and asks the runner's token endpoint for an ID token when it signs keyless.
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
tool="$(command -v provenance-tasks || true)"
if [ -z "$tool" ]; then
    # A venv of the job's own (PEP 668 runners refuse a system-wide pip install).
    venv="${RUNNER_TEMP:-/tmp}/provenance-tasks"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "${PROVENANCE_TASKS_PACKAGE:-${GITHUB_ACTION_PATH:?}}"
    tool="$venv/bin/provenance-tasks"
fi
"$tool" --version

flags=()
given() { [ -n "${!1:-}" ]; }
given PROVENANCE_INPUT_IMAGE && flags+=(--image "$PROVENANCE_INPUT_IMAGE")
given PROVENANCE_INPUT_TAGS && flags+=(--tag "$PROVENANCE_INPUT_TAGS")
given PROVENANCE_INPUT_MODE && flags+=(--mode "$PROVENANCE_INPUT_MODE")
given PROVENANCE_INPUT_IMAGES_FILE && export INVOKE_PROVENANCE_IMAGES_FILE="$PROVENANCE_INPUT_IMAGES_FILE"
case "$task" in
    build|build-sign-verify)
        given PROVENANCE_INPUT_CONTEXT && flags+=(--context "$PROVENANCE_INPUT_CONTEXT")
        given PROVENANCE_INPUT_FILE && flags+=(--file "$PROVENANCE_INPUT_FILE")
        given PROVENANCE_INPUT_PLATFORMS && flags+=(--platform "$PROVENANCE_INPUT_PLATFORMS")
        ;;
    *) given PROVENANCE_INPUT_DIGEST && flags+=(--digest "$PROVENANCE_INPUT_DIGEST") ;;
esac
[ "$task" != build-sign-verify ] || [ "${PROVENANCE_INPUT_ATTEST:-true}" != false ] \
    || flags+=(--no-attest)
"$tool" "$task" "${flags[@]}"
# The repository too, for a later job's verify --image (image_ref is REPOSITORY@DIGEST).
if [ -n "${GITHUB_OUTPUT:-}" ] && ref="$(grep -m1 '^image_ref=' "$GITHUB_OUTPUT")"; then
    ref="${ref#image_ref=}"
    echo "image=${ref%@*}" >> "$GITHUB_OUTPUT"
fi
