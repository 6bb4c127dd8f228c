"""The checks every page gets can fail: the CSP reader against policies it must refuse."""

from __future__ import annotations

import pytest

from tests.ui.support import csp_problems

ORIGIN = "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    "policy",
    [
        "default-src 'self'",
        "default-src 'self'; script-src 'self' 'nonce-abc'; img-src 'self' data:",
        f"default-src 'self'; script-src {ORIGIN}; style-src 'self' 'unsafe-inline'",
    ],
)
def test_strict_policies_pass(policy: str) -> None:
    assert csp_problems(policy, ORIGIN) == []


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        (None, "no Content-Security-Policy"),
        ("", "no Content-Security-Policy"),
        ("img-src 'self'", "neither script-src nor default-src"),
        ("default-src 'self' 'unsafe-inline'", "default-src allows 'unsafe-inline'"),
        ("default-src 'self'; script-src 'self' 'unsafe-inline'", "script-src allows"),
        ("default-src 'self'; script-src-elem 'unsafe-inline'", "script-src-elem allows"),
        ("default-src 'self'; script-src https://cdn.example.org", "allows https://cdn"),
        ("default-src 'self'; img-src *", "img-src allows *"),
        ("default-src 'self'; style-src https:", "style-src allows https:"),
        ("default-src 'self'; script-src data:", "script-src allows data:"),
        ("default-src 'self'; connect-src http://127.0.0.1:9999", "connect-src allows"),
    ],
)
def test_loose_policies_are_named(policy: str | None, why: str) -> None:
    problems = csp_problems(policy, ORIGIN)
    assert any(why in p for p in problems), problems
