"""Ingest's one HTTP client (httpx) and its one retry policy (tenacity), shared by the arXiv API query
and the PDF download: a try that times out, cannot connect, loses its connection, gets 429/5xx or a torn
body is tried again after an exponential backoff, up to `tries` tries in all; anything else fails at once."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

USER_AGENT = "paper-assistant/0.1 (offline-first research assistant)"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 60.0
T = TypeVar("T")


class Transient(Exception):
    """One try failed in a way the next try may not. `timed_out` / `unreachable` say the server gave no
    answer (none in time / no connection, or one dropped before an answer); `status` is a 429/5xx answer's;
    none is set for a torn body."""

    def __init__(self, problem: str, *, timed_out: bool = False, unreachable: bool = False,
                 status: int | None = None):
        super().__init__(problem)
        self.problem = problem
        self.timed_out = timed_out
        self.unreachable = unreachable
        self.status = status


def make_client(timeout_s: float) -> httpx.Client:
    """Every request times out (a stalled call would hang an ingest forever) and follows redirects."""
    return httpx.Client(timeout=timeout_s, follow_redirects=True, headers={"user-agent": USER_AGENT})


@contextmanager
def transport_errors_are_transient(url: str, timeout_s: float) -> Iterator[None]:
    """httpx's timeouts and transport errors (refused, reset, dropped mid-answer) as Transient."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise Transient(f"timed out after {timeout_s:g} s at {url}", timed_out=True) from exc
    except httpx.TransportError as exc:
        raise Transient(f"connection failed ({type(exc).__name__}: {exc}) at {url}", unreachable=True) from exc


def check_status(response: httpx.Response, url: str) -> None:
    """429 and 5xx answers are worth another try."""
    if response.status_code in RETRY_STATUS:
        raise Transient(f"HTTP {response.status_code} from {url}", status=response.status_code)


def with_retries(attempt: Callable[[], T], tries: int, backoff_s: float,
                 before_each: Callable[[], None] = lambda: None) -> T:
    """attempt() until it returns, raises something other than Transient, or `tries` tries have raised
    Transient (the last one is raised). The waits between tries are backoff_s, 2 x backoff_s, ... up to 60 s;
    before_each runs before every try (the caller's politeness delay)."""
    def run_once() -> T:
        before_each()
        return attempt()

    policy = Retrying(stop=stop_after_attempt(max(1, tries)), retry=retry_if_exception_type(Transient),
                      wait=wait_exponential(multiplier=backoff_s, max=MAX_BACKOFF_S), reraise=True)
    return policy(run_once)
