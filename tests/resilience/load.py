"""A small load generator for the resilience tests: threads posting whole surveys, recording what came back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

NO_ANSWER = 0  # the client got no HTTP answer (refused, reset, timed out)


@dataclass
class Outcome:
    """What one post got: an HTTP status, or NO_ANSWER; the Retry-After header of a 503, if any; and the
    content type and text of a refusal (kept only for statuses from 400 on)."""

    status: int
    retry_after: str | None = None
    content_type: str = ""
    text: str = ""


@dataclass
class Load:
    """Posts ``data(n)`` to ``/s/{tokens[n]}`` from ``threads`` threads; ``outcomes[n]`` is the last outcome."""

    base: str
    tokens: list[str]
    data: Callable[[int], dict[str, Any]]
    threads: int = 8
    timeout: float = 10.0
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    history: list[Outcome] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, client: httpx.Client, n: int) -> Outcome:
        try:
            response = client.post(f"{self.base}/s/{self.tokens[n]}", data=self.data(n))
            refused = response.status_code >= 400
            outcome = Outcome(
                response.status_code,
                response.headers.get("retry-after"),
                response.headers.get("content-type", "") if refused else "",
                response.text if refused else "",
            )
        except httpx.HTTPError:
            outcome = Outcome(NO_ANSWER)
        with self._lock:
            self.outcomes[n] = outcome
            self.history.append(outcome)
        return outcome

    def run(self, numbers: Iterable[int], on_each: Callable[[Outcome], None] | None = None) -> None:
        """Post each of ``numbers`` once, spread over the threads (each thread with its own connection)."""
        local = threading.local()
        clients: list[httpx.Client] = []

        def one(n: int) -> None:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(timeout=self.timeout)
                clients.append(client)
            outcome = self.post(client, n)
            if on_each is not None:
                on_each(outcome)

        try:
            with ThreadPoolExecutor(max_workers=self.threads) as pool:
                list(pool.map(one, numbers))
        finally:
            for client in clients:
                client.close()

    def count(self, status: int) -> int:
        with self._lock:
            return sum(o.status == status for o in self.outcomes.values())

    def numbers_with(self, predicate: Callable[[Outcome], bool]) -> list[int]:
        with self._lock:
            return sorted(n for n, o in self.outcomes.items() if predicate(o))
