"""The environment cosign runs in: what this run decides, not whatever the job happened to export.

cosign binds many of its flags to `COSIGN_*` variables (`COSIGN_KEY`, `COSIGN_NEW_BUNDLE_FORMAT`,
`COSIGN_TLOG_UPLOAD`, ...), reads `SIGSTORE_*` trust files and tokens, and fetches its own GitHub
token when it sees `ACTIONS_ID_TOKEN_REQUEST_URL`. A CI job's environment often carries such
variables for other jobs; none of them may change what our sign or verify does. So cosign gets:

- the process basics (PATH, HOME, locale, temp folder, proxies, CA bundles) and the credentials
  its KMS providers read (`AWS_*`, `GOOGLE_*`/`CLOUDSDK_*`, `AZURE_*`, `VAULT_*`, `GITLAB_TOKEN`/
  `GITLAB_HOST`, `KUBECONFIG`), passed on as they are;
- the variable an `env://VAR` key or public key names (its value is a secret: redacted);
- what this run sets: `DOCKER_CONFIG` (the run's private logins), `COSIGN_PASSWORD`, `COSIGN_YES`,
  `TUF_ROOT`, cosign 2's `SIGSTORE_*` trust files;
- the two `COSIGN_*` variables that are the user's to set, read as settings and passed on on
  purpose: `COSIGN_REPOSITORY` (`provenance.cosign_repository`) and `COSIGN_DOCKER_MEDIA_TYPES`
  (`provenance.cosign_docker_media_types`).

Everything else, every other `COSIGN_*`, `SIGSTORE_*`, `TUF_*` and `ACTIONS_ID_TOKEN_*` included,
stays out. The ID token goes to cosign as a file (`--identity-token PATH`), never by variable.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Passed on as they are: what any process needs, and what cosign's KMS providers read.
PASSED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "TZ",
        "LANG",
        "LANGUAGE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "GITLAB_TOKEN",
        "GITLAB_HOST",
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
    }
)
PASSED_PREFIXES = ("LC_", "AWS_", "GOOGLE_", "CLOUDSDK_", "AZURE_", "VAULT_")

#: The user's own cosign settings, by the setting that carries each.
USER_SETTINGS = {
    "cosign_repository": "COSIGN_REPOSITORY",
    "cosign_docker_media_types": "COSIGN_DOCKER_MEDIA_TYPES",
}


def cosign_environment(
    environ: Mapping[str, str],
    *,
    docker_config: str | None,
    tuf_root: str | None,
    trust: Mapping[str, str],
    settings: Mapping[str, str | None],
    key_variables: tuple[str, ...] = (),
) -> dict[str, str]:
    """cosign's whole environment for this run (see the module's docstring). `key_variables`:
    the variables an `env://VAR` key or public key names, passed on on purpose."""
    env = {
        name: value
        for name, value in environ.items()
        if name in PASSED_NAMES or name.startswith(PASSED_PREFIXES) or name in key_variables
    }
    if docker_config:
        env["DOCKER_CONFIG"] = docker_config
    elif environ.get("DOCKER_CONFIG"):
        env["DOCKER_CONFIG"] = environ["DOCKER_CONFIG"]
    # No password means an unencrypted key (as made for laptops): cosign must never prompt.
    env["COSIGN_PASSWORD"] = environ.get("COSIGN_PASSWORD", "")
    env["COSIGN_YES"] = "true"
    if tuf_root:
        env["TUF_ROOT"] = tuf_root
    env.update(trust)
    for key, variable in USER_SETTINGS.items():
        value = settings.get(key) or environ.get(variable)
        if value:
            env[variable] = value
    return env


def shown(env: Mapping[str, str]) -> dict[str, str]:
    """The part of cosign's environment that changes what it does, for a dry run to print: the
    docker config folder, trust files and the user's cosign settings (never a password)."""
    keep = ("DOCKER_CONFIG", "TUF_ROOT", *USER_SETTINGS.values())
    return {k: v for k, v in env.items() if k in keep or k.startswith("SIGSTORE_")}
