"""Pinned component versions (e2e/cluster/versions.env) and their go.mod consistency check."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import settings


@dataclass(frozen=True)
class Versions:
    """Pinned versions read from e2e/cluster/versions.env."""

    kubernetes: str
    etcd: str
    kwok: str
    helm: str
    kubeconform: str
    llm_d_inference_sim: str

    @classmethod
    def load(cls, path: Path = settings.VERSIONS_FILE) -> Versions:
        values: dict[str, str] = {}
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise settings.ClusterError(f"{path}: malformed line {raw!r}")
            values[key.strip()] = value.strip().strip("'\"")
        try:
            return cls(
                kubernetes=values["KUBERNETES_VERSION"],
                etcd=values["ETCD_VERSION"],
                kwok=values["KWOK_VERSION"],
                helm=values["HELM_VERSION"],
                kubeconform=values["KUBECONFORM_VERSION"],
                llm_d_inference_sim=values.get("LLM_D_INFERENCE_SIM_VERSION", ""),
            )
        except KeyError as exc:
            raise settings.ClusterError(f"{path}: missing {exc.args[0]}") from exc

    @property
    def kube_major_minor(self) -> tuple[str, str]:
        match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+.*", self.kubernetes)
        if match is None:
            raise settings.ClusterError(f"bad KUBERNETES_VERSION {self.kubernetes!r}")
        return match.group(1), match.group(2)

    def check_go_mod(self, go_mod: Path = settings.GO_MODULE_DIR / "go.mod") -> None:
        """Fail unless go.mod requires exactly the pinned Kubernetes, staging and etcd versions."""
        text = go_mod.read_text(encoding="utf-8")
        major, minor = self.kube_major_minor
        staging = "v0." + minor + self.kubernetes[len(f"v{major}.{minor}") :]
        wanted = {
            "k8s.io/kubernetes": self.kubernetes,
            "go.etcd.io/etcd/server/v3": self.etcd,
        }
        for module, version in wanted.items():
            if not re.search(
                rf"^\s*(require\s+)?{re.escape(module)}\s+{re.escape(version)}\s*$", text, re.M
            ):
                raise settings.ClusterError(
                    f"{go_mod} must require {module} {version} (see {settings.VERSIONS_FILE.name})"
                )
        for module, version in re.findall(
            r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+k8s\.io/[\w.-]+\s+(\S+)\s*$", text, re.M
        ):
            if version != staging:
                raise settings.ClusterError(
                    f"{go_mod}: replace {module} => {version}, expected {staging}"
                )
