"""Helpers of the chart's e2e tests: helm on the test cluster, reads, RBAC listings, logs."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from e2e.localcluster import Cluster
from e2e.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "fleetroute"
# What a missing permission looks like in the operator's log (the API's 403, kopf's warning).
DENIED = re.compile(r'[Ff]orbidden|" 403 |[Nn]ot enough permissions|Failed to post an event')
EXPECTED_RBAC = yaml.safe_load((Path(__file__).parent / "rbac_expected.yaml").read_text())
Rule = tuple[str, tuple[str, ...], str]


class Helm:
    """The pinned helm binary against the test cluster, with its own cache and config dirs."""

    def __init__(self, cluster: Cluster, home: Path) -> None:
        self.binary = cluster.binary("helm")
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result


def get(cluster: Cluster, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
    if namespace:
        args += ["-n", namespace]
    out = cluster.kubectl(*args).stdout.strip()
    return json.loads(out) if out else None


def ready(obj: dict[str, Any] | None) -> bool:
    conditions = (obj or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def denied_lines(operator: OperatorProcess) -> list[str]:
    text = operator.log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if DENIED.search(line)]


def can_i_list(cluster: Cluster, user: str, namespace: str) -> set[Rule]:
    """(resource or URL, resource names, verb) of every rule `kubectl auth can-i --list` shows."""
    out = cluster.kubectl("auth", "can-i", "--list", f"--as={user}", "-n", namespace).stdout
    row = re.compile(
        r"^(?P<res>\S+)?\s*\[(?P<urls>[^\]]*)\]\s+\[(?P<names>[^\]]*)\]\s+\[(?P<verbs>[^\]]*)\]\s*$"
    )
    rules = set()
    for line in out.splitlines()[1:]:
        match = row.match(line)
        assert match, f"unparsed can-i line: {line!r}"
        target = match["res"] or match["urls"]
        names = tuple(sorted(match["names"].split()))
        for verb in match["verbs"].split():
            rules.add((target, names, verb))
    return rules


def expected_rules(rules: list[dict[str, Any]]) -> set[Rule]:
    return {
        (r["resource"], tuple(sorted(r.get("resourceNames", []))), verb)
        for r in rules
        for verb in r["verbs"]
    }


def always_rules() -> set[Rule]:
    always = EXPECTED_RBAC["always"]
    return {
        (target, (), verb)
        for group in ("resources", "nonResourceURLs")
        for target, verbs in always[group].items()
        for verb in verbs
    }


def service_account_kubeconfig(
    cluster: Cluster, service_account: str, namespace: str, path: Path
) -> Path:
    """A kubeconfig holding a token of a ServiceAccount (TokenRequest API), written to `path`.

    A token rather than `as:` impersonation: neither kopf nor the Kubernetes Python client reads
    `as:` from a kubeconfig, so the operator would silently run as the admin.
    """
    token = cluster.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration=3600s"
    ).stdout.strip()
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"] = [{"name": service_account, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = service_account
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path
