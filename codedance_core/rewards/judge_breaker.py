"""The judge's circuit breaker: a dead judge costs a bounded wait per run, not minutes per answer.

Without it, a judge that hangs costs every answer its full retry schedule (six attempts of a
60 s timeout, plus backoff). The breaker keeps one account per judge (one per run): the seconds
spent on attempts that failed as a dead server fails (timeouts, connection errors, 5xx, 429, a
garbled body), backoff included, summed over concurrent requests. While the account is under
`budget_s` requests go out, none allowed to wait longer than what is left; once it is spent the
breaker is open and answers become `judge_error` without a request. A good reply means the
judge is alive: the account starts again from zero. After `probe_after_s` an open breaker lets
one request through to see whether the judge is back.

The state is behind a `threading.Lock` and no method awaits, so one breaker serves coroutines
on one loop, several loops (`asyncio.run` per call) and threads alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Permit:
    """Leave to make one attempt, waiting at most `wait_s` (backoff and request together)."""

    wait_s: float
    probe: bool = False


class JudgeBreaker:
    """Bounds the total time a run waits on a failing judge; thread and task safe."""

    def __init__(
        self, budget_s: float, probe_after_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget_s = budget_s
        self.probe_after_s = probe_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._spent = 0.0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None

    @property
    def spent_s(self) -> float:
        with self._lock:
            return self._spent

    def admit(self) -> Permit | None:
        """A permit for one attempt, or None: the breaker is open and no request may go."""
        with self._lock:
            if self._opened_at is None:
                return Permit(wait_s=max(self.budget_s - self._spent, 0.0))
            waited = self._clock() - self._opened_at
            if self.probe_after_s > 0 and not self._probing and waited >= self.probe_after_s:
                self._probing = True
                return Permit(wait_s=self.budget_s, probe=True)
            return None

    def failed(self, permit: Permit, waited_s: float) -> None:
        """An attempt failed as a dead judge fails, after `waited_s` seconds."""
        with self._lock:
            self._spent += waited_s
            if permit.probe:
                self._probing = False
                self._opened_at = self._clock()
                _log.warning("LLM judge still failing; next probe in %.0f s", self.probe_after_s)
            elif self._opened_at is None and self._spent >= self.budget_s:
                self._opened_at = self._clock()
                later = f"probing again in {self.probe_after_s:.0f} s" if self.probe_after_s else "not again"
                _log.warning(
                    "LLM judge: %.0f s spent on failed requests (judge.budget_s = %.0f): no more requests, "
                    "%s; answers no rule decides are recorded as judge_error",
                    self._spent,
                    self.budget_s,
                    later,
                )

    def answered(self, permit: Permit) -> None:
        """The judge replied (not a 429 or 5xx): it is alive, so the account starts again."""
        with self._lock:
            self._spent = 0.0
            if permit.probe or self._opened_at is not None:
                if self._opened_at is not None:
                    _log.warning("LLM judge answers again: requests resume")
                self._opened_at = None
                self._probing = False

    def release(self, permit: Permit) -> None:
        """An attempt ended without telling whether the judge is alive (it was cancelled)."""
        if permit.probe:
            with self._lock:
                self._probing = False

    def reason(self) -> str:
        """Why an answer was not sent: what a `judge_error` verdict records."""
        with self._lock:
            spent = self._spent
        return (
            f"judge not asked: {spent:.1f} s already spent on failed requests "
            f"(judge.budget_s = {self.budget_s:g})"
        )
