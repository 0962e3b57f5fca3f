"""Schemathesis fuzzes every /api/v1 operation as an admin and as a device: no 5xx, nothing off-spec."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Bounded so the whole fuzz stays well under a minute on two cores.
EXAMPLES_PER_OPERATION = 3


def fuzz(
    app: Flask, headers: Callable[[], dict[str, str]], modes: list[GenerationMode], examples: int
) -> list[str]:
    """Run every operation's strategy; returns one line per failing operation."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in modes))

        @given(case=strategy)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers(), checks=CHECKS)

        try:
            run()
        except Exception as error:  # each failing operation is reported, the walk goes on
            failures.append(f"{operation.label}: {str(error).strip()[:1500]}")
    return failures


@pytest.mark.slow
def test_fuzz_every_operation_as_admin(app: Flask, headers_for: Callable[[str], dict[str, str]]) -> None:
    # Valid and invalid inputs: invalid ones must be refused with a documented 4xx, never a 5xx.
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    failures = fuzz(app, lambda: headers_for("admin"), modes, EXAMPLES_PER_OPERATION)
    assert failures == [], "\n\n".join(failures)


@pytest.mark.slow
def test_fuzz_every_operation_as_a_device(app: Flask, headers_for: Callable[[str], dict[str, str]]) -> None:
    # A device holds one permission: most operations refuse it, which must also be on-spec.
    failures = fuzz(app, lambda: headers_for("device"), [GenerationMode.POSITIVE], 2)
    assert failures == [], "\n\n".join(failures)
