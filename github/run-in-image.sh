#!/usr/bin/env bash
# The action's step (action.yml runs it): github/run-action.sh in the tool's own job image, the
# job_image input (by digest: the release writes it), with `docker run` on the runner's engine;
# on the runner itself when job_image is empty (the tool from this action's source, cosign from
# the workflow's PATH: unpinned).
#
# A composite step, not a Docker container action: the image is an input, which a workflow can
# pin to a digest it verified itself (`runs.image` is fixed by the action's ref), and the step
# says what the container sees: the workspace, $GITHUB_OUTPUT, the engine's socket, the files the
# environment names, each at its own path; variables are passed by name, never by value on argv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image="${PROVENANCE_JOB_IMAGE:-}"
[ -n "$image" ] || exec "$here/run-action.sh"
case "$image" in
    *@sha256:*) ;;
    *) echo "::warning::provenance-tasks: job_image $image is not pinned by digest" ;;
esac

args=(run --rm --network host --user "$(id -u):$(id -g)" --workdir "$PWD")
mounted=()  # (bash 4.4+: an empty array expands under set -u)
mount() {  # PATH [ro]: bind it at the same path, unless a folder mounted already holds it
    local path="$1" mode="${2:-rw}" m
    for m in "${mounted[@]}"; do
        [ "$m" != "$path" ] && [[ "$path" != "$m"/* ]] || return 0
    done
    mounted+=("$path")
    args+=(--volume "$path:$path:$mode")
}
mount "$PWD"
[ -z "${GITHUB_WORKSPACE:-}" ] || mount "$GITHUB_WORKSPACE"
[ -z "${GITHUB_OUTPUT:-}" ] || mount "$(dirname "$GITHUB_OUTPUT")"
mount "$(dirname "$here")" ro  # this action: run-action.sh

# The engine: its unix socket, and its group for the runner's user (a TCP engine needs nothing:
# the container shares the runner's network).
case "${DOCKER_HOST:-unix:///var/run/docker.sock}" in
    unix://*)
        socket="${DOCKER_HOST:-unix:///var/run/docker.sock}"
        socket="${socket#unix://}"
        mount "$socket"
        args+=(--group-add "$(stat -c %g "$socket")")
        ;;
esac

# A home of the job's own: the image has none for the runner's user (cosign and docker write
# there); the runner's docker config (buildx builders, logins) is read where it is.
home="${RUNNER_TEMP:-/tmp}/provenance-home"
mkdir -p "$home"
mount "$home"
args+=(--env "HOME=$home")
if [ -z "${DOCKER_CONFIG:-}" ] && [ -d "${HOME:-/nonexistent}/.docker" ]; then
    mount "$HOME/.docker"
    args+=(--env "DOCKER_CONFIG=$HOME/.docker")
fi

# The job's variables, by name; each file or folder one names (a CA bundle, a trusted root, a
# key file) is mounted read-only where it is.
while IFS= read -r name; do
    case "$name" in
        HOME | PATH | HOSTNAME) continue ;;
        CI | GITHUB_* | RUNNER_* | ACTIONS_* | PROVENANCE_* | INVOKE_* | DOCKER_* | COSIGN_* | \
            SIGSTORE_* | TUF_* | SSL_CERT_* | REGISTRY_* | http_proxy | https_proxy | no_proxy | \
            HTTP_PROXY | HTTPS_PROXY | NO_PROXY) ;;
        *) continue ;;
    esac
    args+=(--env "$name")
    value="${!name}"
    if [[ "$value" == /* ]] && [ -e "$value" ]; then
        mount "$value" ro
    fi
done < <(compgen -e)

exec docker "${args[@]}" --entrypoint "" "$image" "$here/run-action.sh"
