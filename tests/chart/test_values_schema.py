"""values.schema.json: generated from values.yaml; Helm rejects bad values with clear messages."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, ROOT, Helm

sys.path.insert(0, str(ROOT / "scripts"))
import generate_chart

# (id, values, what the error says)
BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown-top-level",
        {"replicaCount": 2},
        "at '': additional properties 'replicaCount' not allowed",
    ),
    (
        "unknown-nested",
        {"router": {"replicas": 3}},
        "at '/router': additional properties 'replicas' not allowed",
    ),
    (
        "wrong-type",
        {"router": {"replicaCount": "two"}},
        "at '/router/replicaCount': got string, want integer",
    ),
    (
        "below-minimum",
        {"router": {"replicaCount": 0}},
        "at '/router/replicaCount': minimum: got 0, want 1",
    ),
    (
        "port-range",
        {"router": {"ports": {"grpc": 70000}}},
        "at '/router/ports/grpc': maximum: got 70,000, want 65,535",
    ),
    (
        "enum",
        {"image": {"pullPolicy": "Sometimes"}},
        "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
    ),
    (
        "mode",
        {"router": {"mode": "daemonset"}},
        "at '/router/mode': value must be one of 'deployment', 'sidecar'",
    ),
    ("digest-pattern", {"image": {"digest": "sha256:abc"}}, "at '/image/digest'"),
    ("empty-repository", {"image": {"repository": ""}}, "at '/image/repository': minLength"),
    (
        "pdb-percentage",
        {"router": {"podDisruptionBudget": {"minAvailable": "50"}}},
        "at '/router/podDisruptionBudget/minAvailable'",
    ),
    ("zero-interval", {"operator": {"statusInterval": 0}}, "at '/operator/statusInterval'"),
    (
        "pull-secret-shape",
        {"imagePullSecrets": ["pull"]},
        "at '/imagePullSecrets/0': got string, want object",
    ),
    (
        "gateway-port",
        {"gateway": {"ports": [{"name": "http"}]}},
        "at '/gateway/ports/0': missing property 'containerPort'",
    ),
    (
        "label-value",
        {"operator": {"podLabels": {"tier": 1}}},
        "at '/operator/podLabels/tier': got number, want string",
    ),
    (
        "interval-pattern",
        {"metrics": {"serviceMonitor": {"interval": "soon"}}},
        "at '/metrics/serviceMonitor/interval'",
    ),
    ("configmap-name", {"routerConfig": {"name": "Router_Config"}}, "at '/routerConfig/name'"),
]


@pytest.mark.parametrize(
    ("values", "message"), [pytest.param(v, m, id=i) for i, v, m in BAD_VALUES]
)
def test_bad_values_are_rejected_with_a_clear_message(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    error = helm.template_error(values)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_schema_is_generated_from_values_yaml() -> None:
    text = (CHART / "values.yaml").read_text()
    committed = json.loads((CHART / "values.schema.json").read_text())
    assert committed == generate_chart.values_schema(text)
    assert committed["additionalProperties"] is False
    assert committed["properties"]["router"]["properties"]["replicaCount"] == {
        "type": "integer",
        "description": "Number of router (or gateway) pods.",
        "minimum": 1,
        "default": 2,
    }


def test_values_table_lists_every_value() -> None:
    text = (CHART / "values.yaml").read_text()
    readme = (CHART / "README.md").read_text()
    assert generate_chart.values_table(text) in readme
    values = yaml.safe_load(text)
    entries = generate_chart.parse_entries(text)
    for path in generate_chart._leaf_paths(values, entries):
        assert f"| `{'.'.join(path)}` |" in readme


def test_generator_reads_comments_and_schema_lines() -> None:
    text = (
        "# Header, not a value's comment.\n"
        "\n"
        "top:\n"
        "  # How many.\n"
        "  # Always positive.\n"
        '  # @schema {"minimum": 1}\n'
        "  count: 3\n"
        "  # Free-form labels.\n"
        '  # @schema {"additionalProperties": {"type": "string"}}\n'
        "  labels:\n"
        "    a: b\n"
    )
    schema = generate_chart.values_schema(text)
    top = schema["properties"]["top"]
    assert top["additionalProperties"] is False
    assert top["properties"]["count"] == {
        "type": "integer",
        "description": "How many. Always positive.",
        "minimum": 1,
        "default": 3,
    }
    assert top["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "properties" not in top["properties"]["labels"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("a:\n  b: 1\n", "undocumented values: a.b", id="undocumented"),
        pytest.param("# x\n# @schema {oops}\na: 1\n", "bad @schema", id="bad-schema-line"),
        pytest.param("# x\na:\n   b: 1\n", "indentation", id="odd-indent"),
    ],
)
def test_generator_rejects_bad_values_files(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        generate_chart.values_schema(text)
