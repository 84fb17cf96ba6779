"""Opt-in retries (``Client(retries=N)``), sans I/O.

A request is tried again, up to ``retries`` times, when it failed in a way
that trying again may cure and cannot make worse:

* the connection could not be opened (refused, unreachable, timed out, TLS
  refused): nothing was sent, so any method may go again;
* the server closed the connection or stopped answering (``read`` or
  ``write`` timeout) after the request went out: only an idempotent method
  (RFC 9110 section 9.2.2: ``GET``, ``HEAD``, ``PUT``, ``DELETE``,
  ``OPTIONS``, ``TRACE``) with a body that can be sent again. A ``POST``
  that may have reached the server is never sent twice.

Between tries the client waits ``retry_backoff`` seconds, doubled each time,
with jitter (a random half of it off), so that clients failing together do
not come back together. And a *budget* bounds retries across the client:
each request earns ``retry_budget`` of a retry (0.2: one retry per five
requests), up to a reserve of 10, and each retry spends one. While a
server is down, retries then add at most a fifth to the load instead of
multiplying it by ``retries + 1``.
"""

from __future__ import annotations

import random

__all__ = ["DEFAULT_RETRY_BACKOFF", "DEFAULT_RETRY_BUDGET", "RetryPolicy"]

#: Seconds before the first retry (doubled for each next one).
DEFAULT_RETRY_BACKOFF = 0.5

#: Retries earned per request (the budget), beyond a reserve of 10.
DEFAULT_RETRY_BUDGET = 0.2

# Retries a client may make before its requests have earned any, and the
# most it saves up.
_RESERVE = 10.0

# The longest wait between two tries, whatever the doubling says.
_MAX_BACKOFF = 30.0


class RetryPolicy:
    """One client's retries: how many per request, the back-off, and the
    budget they share (see the module docstring)."""

    __slots__ = ("_backoff", "_budget", "_tokens", "retries", "spent")

    def __init__(self, retries: int, backoff: float, budget: float) -> None:
        self.retries = retries
        self._backoff = backoff
        self._budget = budget
        self._tokens = _RESERVE
        #: Retries made so far.
        self.spent = 0

    def request(self) -> None:
        """A request starts: it earns its share of the budget."""
        self._tokens = min(_RESERVE, self._tokens + self._budget)

    def allow(self, attempt: int) -> bool:
        """Whether try number ``attempt + 1`` may go (``attempt`` retries
        made for this request so far); spends the budget if so."""
        if attempt >= self.retries or self._tokens < 1:
            return False
        self._tokens -= 1
        self.spent += 1
        return True

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt + 1``."""
        full = min(_MAX_BACKOFF, self._backoff * 2.0**attempt)
        jitter: float = random.uniform(0.5, 1.0)
        return full * jitter
