"""CRs generated from the CRD schemas, valid and mutated: the schema and CEL rules (as the local
validator applies them) refuse with a message, or the operator gives a clear condition; it never
crashes. e2e/test_fuzz_crs.py runs the same against the real API server."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given, settings

from tests import crd_validator
from tests.crd_strategies import crs
from tests.fuzzing import examples
from tests.operator_verdict import ready_condition


@settings(max_examples=examples(400))
@given(obj=crs())
def test_every_cr_is_refused_with_a_message_or_given_a_clear_condition(
    obj: dict[str, Any],
) -> None:
    if not isinstance(obj.get("spec"), dict):
        found = crd_validator.errors(obj)
    else:
        found = crd_validator.errors(obj)
    if found:
        event(f"{obj['kind']} refused")
        assert all(isinstance(m, str) and m.split(": ", 1)[-1] for m in found), found
        return
    schema = crd_validator._schemas()[obj["kind"]]
    defaulted = crd_validator.apply_defaults(schema, obj)
    condition = ready_condition(defaulted)
    event(f"{obj['kind']} {condition['reason']}")
    assert condition["reason"] != "InvalidSpec", (defaulted, condition)
    assert condition["status"] in ("True", "False")
    assert condition["message"]
