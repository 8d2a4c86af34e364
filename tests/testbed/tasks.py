"""Real services on loopback for a laptop: an engine, a plain and a TLS registry.

invoke testbed.up [--engine current|classic] [--port 5000]
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
    }
)
def up(
    c: Context,
    engine: str | None = None,
    port: int = 5000,
    state: str | None = None,
    secure: bool = True,
) -> None:
    """Start what is missing and print the environment to use it (DOCKER_HOST, SSL_CERT_FILE)."""
    from pathlib import Path

    from tests.testbed import bed, processes

    folder = Path(state) if state else bed.DEFAULT_STATE
    if bed.load(folder) is not None:
        raise Exit(f"a test bed is already up in {folder}: run `invoke testbed.down` first", code=2)
    try:
        running = bed.up(folder, engine=engine, plain_port=port, secure=secure)
    except processes.ServiceError as exc:
        raise Exit(f"testbed: {exc}", code=4) from None
    for key, value in running.environ().items():
        print(f"export {key}={value}")
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


ns = Collection("testbed", up, down)
