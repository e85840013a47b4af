"""Shared by the reliability suites."""

from __future__ import annotations

import signal

import pytest


@pytest.fixture
def alarm(request):
    """Fail instead of hanging the suite if the test body blocks or runs away: after the
    module's ``ALARM_SECONDS`` (120 by default; inputs that hit the old defects took
    minutes or blocked forever)."""
    seconds = int(getattr(request.module, "ALARM_SECONDS", 120))

    def _expired(*_):
        # pytest.fail raises a BaseException: a TimeoutError is an OSError, which the code
        # under test may catch and turn into its own error (then the test ran on, blocked)
        pytest.fail(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(seconds)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
