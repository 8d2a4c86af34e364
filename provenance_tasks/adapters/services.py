"""The HTTP calls this package makes itself: is a Sigstore service there, and a GitHub ID token.

Everything else goes through a tool (docker, buildx, cosign). These two can't: a service that
doesn't answer must be found before anything is pushed, and GitHub's ID tokens live five minutes,
so one is asked for right before each signing attempt.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from provenance_tasks.errors import ToolError


def unreachable(
    url: str, *, tries: int = 3, timeout: float = 2.0, sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """Why nothing answers at `url` after a few quick tries (refused, no such host, timeout), or
    None when something does. Any HTTP answer, even 404 or 503, counts as there: what it says is
    for the retry policy of the real call to judge."""
    reason = "no answer"
    for attempt in range(tries):
        if attempt:
            sleep(0.5)
        try:
            with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - http(s) checked
                return None
        except urllib.error.HTTPError:
            return None
        except (urllib.error.URLError, OSError) as exc:
            cause = getattr(exc, "reason", exc)
            reason = str(cause) or type(cause).__name__
    return reason


def refuses_connections(
    registry: str,
    *,
    tries: int = 3,
    timeout: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Why `registry` (host[:port]) can't be reached at all after a few quick tries: it refuses
    the connection, or its name doesn't resolve (a typo'd host or port); None otherwise. Only
    those two: a timeout, a reset after connecting or any HTTP answer are for the retry policy
    of the real calls, which a registry that is restarting may well pass."""
    import socket

    where = urllib.parse.urlsplit(f"//{registry}")
    host, port = where.hostname or registry, where.port or 443
    if registry == "docker.io":
        host = "registry-1.docker.io"
    reason = None
    for attempt in range(tries):
        if attempt:
            sleep(0.5 * 2 ** (attempt - 1))  # 0.5 s, then 1 s: within about 5 s in all
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            return None
        except ConnectionRefusedError:
            reason = f"{registry} refuses connections"
        except socket.gaierror as exc:
            reason = f"{host} does not resolve ({exc.strerror or exc})"
        except OSError:
            return None  # a timeout or anything else: the real call's retries decide
    return reason


def github_id_token(
    request_url: str, request_token: str, audience: str, *, timeout: float = 10.0
) -> str:
    """An ID token from the Actions runner's endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`, which the
    job has when it declares `permissions: id-token: write`). The request token rides in a header;
    neither token ever reaches an error message."""
    parts = urllib.parse.urlsplit(request_url)
    query = urllib.parse.urlencode({"audience": audience})
    url = urllib.parse.urlunsplit(parts._replace(query=f"{parts.query}&{query}".lstrip("&")))
    request = urllib.request.Request(  # noqa: S310 - the runner's own URL
        url, headers={"Authorization": f"bearer {request_token}", "Accept": "application/json"}
    )
    where = f"{parts.scheme}://{parts.netloc}"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            value = json.loads(answer.read().decode("utf-8")).get("value")
    except urllib.error.HTTPError as exc:
        raise ToolError(
            f"the GitHub Actions token endpoint at {where} answered {exc.code} for an ID token",
            hint="give the job `permissions: id-token: write`, or pass SIGSTORE_ID_TOKEN",
        ) from None
    except (urllib.error.URLError, OSError, ValueError, AttributeError) as exc:
        raise ToolError(
            f"no ID token from the GitHub Actions token endpoint at {where}: {type(exc).__name__}",
            hint="the runner's token service may be down: re-run the job",
        ) from None
    if not isinstance(value, str) or not value:
        raise ToolError(
            f"the GitHub Actions token endpoint at {where} answered without a token",
            hint="re-run the job; give it `permissions: id-token: write`",
        )
    return value
