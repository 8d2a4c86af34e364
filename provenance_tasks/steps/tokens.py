"""The keyless signer's OIDC token: found and checked on its face before anything is pushed,
and, from GitHub's runner endpoint, asked for anew before each attempt (they live five minutes).
"""

from __future__ import annotations

from provenance_tasks.adapters.services import github_id_token
from provenance_tasks.ci._env import ID_TOKEN_VARIABLE
from provenance_tasks.ci.oidc import SIGSTORE_AUDIENCE, token_problem
from provenance_tasks.errors import InputError
from provenance_tasks.logs import StepLog
from provenance_tasks.models import IdentityToken
from provenance_tasks.steps.run import Run


def identity_token(run: Run) -> IdentityToken:
    """The keyless signer's token, checked on its face now: a missing, expired or wrong-audience
    token is bad input (exit 2), found before anything is pushed."""
    env = run.environ
    if run.ci.id_token:
        token = IdentityToken(run.ci.id_token, run.ci.id_token_source or ID_TOKEN_VARIABLE)
    elif env.get(ID_TOKEN_VARIABLE):
        token = IdentityToken(env[ID_TOKEN_VARIABLE], ID_TOKEN_VARIABLE)
    elif env.get("ACTIONS_ID_TOKEN_REQUEST_URL") and env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        return IdentityToken(
            source="the GitHub Actions token endpoint",
            request_url=env["ACTIONS_ID_TOKEN_REQUEST_URL"],
            request_token=env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"],
        )
    else:
        raise InputError(
            "keyless signing needs an OIDC token and none was found", hint=run.ci.keyless_hint
        )
    check_token(run, token)
    return token


def check_token(run: Run, token: IdentityToken) -> None:
    import time

    problem = token_problem(token.value or "", now=time.time())
    if problem:
        raise InputError(f"the ID token in {token.source} {problem}", hint=run.ci.keyless_hint)


def fresh_token(run: Run, log: StepLog, token: IdentityToken) -> IdentityToken:
    """The token to sign with now: the given one, or a new one from the runner's endpoint."""
    if not token.from_endpoint:
        return token
    assert token.request_url is not None and token.request_token is not None
    value = github_id_token(token.request_url, token.request_token, SIGSTORE_AUDIENCE)
    run.redactor.add(value)
    log.mask([value])  # GitHub: the runner masks it too, wherever a tool might print it
    return IdentityToken(value, token.source)
