"""AttemptOutcome.status is an AttemptStatus: a misspelt status fails where the outcome is made."""

from __future__ import annotations

import pytest

from jobs.states import ErrorKind
from worker.attempt import AttemptOutcome, AttemptStatus


def test_a_status_word_becomes_the_enum_and_still_reads_as_the_word() -> None:
    outcome = AttemptOutcome("failed", ErrorKind.TIMEOUT, "slow")  # type: ignore[arg-type]
    assert outcome.status is AttemptStatus.FAILED
    assert outcome.status == "failed" and f"{outcome.status}" == "failed"  # logs read as before


def test_a_status_that_does_not_exist_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="succeded"):
        AttemptOutcome("succeded")  # type: ignore[arg-type]
