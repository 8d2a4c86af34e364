"""Real services on loopback for a laptop: an engine, a plain and a TLS registry, a Sigstore.

invoke testbed.up [--engine current|classic] [--port 5000] [--sigstore]
invoke testbed.token [--github]      an ID token our Fulcio accepts, for SIGSTORE_ID_TOKEN
invoke testbed.down
"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task


@task(
    help={
        "engine": "start this engine even if one answers: current or classic",
        "port": "port of the plain registry (default 5000, the local default image's)",
        "state": "folder for the services' state (default /tmp/provenance-testbed)",
        "secure": "also start the TLS registry with a login (default: yes)",
        "sigstore": "also start our Sigstore (Fulcio, Rekor, a TSA; needs Node.js ^20.17)",
    }
)
def up(
    c: Context,
    engine: str | None = None,
    port: int = 5000,
    state: str | None = None,
    secure: bool = True,
    sigstore: bool = False,
) -> None:
    """Start what is missing and print the environment to use it (DOCKER_HOST, SSL_CERT_FILE)."""
    from pathlib import Path

    from tests.testbed import bed, processes

    folder = Path(state) if state else bed.DEFAULT_STATE
    if bed.load(folder) is not None:
        raise Exit(f"a test bed is already up in {folder}: run `invoke testbed.down` first", code=2)
    try:
        running = bed.up(folder, engine=engine, plain_port=port, secure=secure, sigstore=sigstore)
    except processes.ServiceError as exc:
        raise Exit(f"testbed: {exc}", code=4) from None
    for key, value in running.environ().items():
        print(f"export {key}={value}")
    if running.engine == "external":
        print(f"# engine: the one that answers at {running.docker_host}")
    else:
        print(f"# engine: none answered, so this test bed started its own ({running.engine})")
    print(f"# plain registry {running.plain_registry}")
    if running.secure_registry:
        print(
            f"# TLS registry {running.secure_registry} (user {running.username}; "
            f"password in {folder}/testbed.json)"
        )


@task(help={"state": "folder given to testbed.up"})
def down(c: Context, state: str | None = None) -> None:
    """Stop the services that testbed.up started, by their PIDs."""
    from pathlib import Path

    from tests.testbed import bed

    running = bed.load(Path(state) if state else bed.DEFAULT_STATE)
    if running is None:
        print("no test bed is up")
        return
    bed.down(running)
    print("test bed stopped")


@task(
    help={
        "state": "folder given to testbed.up",
        "github": "a GitHub Actions token (default: a GitLab one, from the CI_* variables)",
        "lifetime": "seconds until it expires (default 600)",
    }
)
def token(c: Context, state: str | None = None, github: bool = False, lifetime: int = 600) -> None:
    """Print an ID token that the test bed's Fulcio accepts, shaped by this shell's CI variables.

    eval "$(invoke testbed.token)" exports SIGSTORE_ID_TOKEN for a keyless run on a laptop.
    """
    import os
    from pathlib import Path

    from tests.testbed import bed
    from tests.testbed import sigstore as sigstore_bed

    folder = Path(state) if state else bed.DEFAULT_STATE
    key = folder / "sigstore" / "oidc-issuer.key"
    if not key.exists():
        raise Exit(f"no Sigstore test bed in {folder}: run `invoke testbed.up --sigstore`", code=2)
    env = {**_EXAMPLE_CI, **os.environ}
    claims = (
        sigstore_bed.github_claims(env, lifetime=lifetime)
        if github
        else sigstore_bed.gitlab_claims(env, lifetime=lifetime)
    )
    print(f"export SIGSTORE_ID_TOKEN={sigstore_bed.mint(key, claims)}")


# What a token is shaped by where the shell has no CI variables of its own.
_EXAMPLE_CI = {
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_PROJECT_PATH": "group/project",
    "CI_COMMIT_REF_NAME": "main",
    "CI_COMMIT_SHA": "0" * 40,
    "CI_PIPELINE_ID": "1",
    "CI_JOB_ID": "1",
    "GITHUB_REPOSITORY": "octo-org/app",
    "GITHUB_WORKFLOW_REF": "octo-org/app/.github/workflows/build.yml@refs/heads/main",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_SHA": "0" * 40,
    "GITHUB_RUN_ID": "1",
}

ns = Collection("testbed", up, down, token)
