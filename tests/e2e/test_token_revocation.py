"""A revoked token is refused by every worker process (issue 14): `pledger serve --workers 2`
and `pledger token revoke` as separate processes, over real HTTP."""

from __future__ import annotations

import time

import httpx2
import pytest

from api.auth import REMEMBER_SECONDS
from api.settings import Settings
from tests.e2e.test_serve import issue_token, pledger, serving

pytestmark = pytest.mark.slow


def test_a_token_revoked_from_the_cli_is_refused_by_both_workers(settings: Settings) -> None:
    token = issue_token(settings, "--role", "viewer", "--name", "Leaked laptop")
    with serving(settings, "two-workers", "--workers", "2") as server:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx2.Client(base_url=server.url, timeout=30.0) as client:
            # Many requests on fresh connections reach both workers; each remembers the token.
            for _ in range(20):
                fresh = client.get("/v1/partners", headers={**headers, "Connection": "close"})
                assert fresh.status_code == 200, fresh.text

            revoked = pledger(settings, "token", "revoke", "Leaked laptop")
            assert revoked.returncode == 0, revoked.stderr
            time.sleep(REMEMBER_SECONDS + 0.2)  # how long a worker may remember a valid token

            answers = {
                client.get("/v1/partners", headers={**headers, "Connection": "close"}).status_code
                for _ in range(20)
            }
    assert answers == {401}
