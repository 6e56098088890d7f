"""``training.registry.set_alias``: a concurrent insert of the same alias is retried, other errors are not."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from training.registry import set_alias


class _Client:
    """Answers ``set_registered_model_alias`` with the given errors first, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[tuple[str, str, str]] = []

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.calls.append((name, alias, version))
        if self.errors:
            raise self.errors.pop(0)


def test_unique_violation_of_a_concurrent_job_is_retried() -> None:
    pg = MlflowException('(psycopg2.errors.UniqueViolation) duplicate key value violates "registered_model_alias_pk"')
    lite = MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_aliases.name")
    client = _Client(pg, lite)
    set_alias(client, "lead_scoring", "champion", "3")
    assert client.calls == [("lead_scoring", "champion", "3")] * 3


def test_other_errors_and_the_last_attempt_are_raised() -> None:
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        set_alias(_Client(MlflowException("RESOURCE_DOES_NOT_EXIST: no version 9")), "m", "champion", "9")
    always = [MlflowException("UniqueViolation") for _ in range(3)]
    client = _Client(*always)
    with pytest.raises(MlflowException, match="UniqueViolation"):
        set_alias(client, "m", "champion", "1", attempts=3)
    assert len(client.calls) == 3
