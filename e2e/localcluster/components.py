"""Command lines of the control-plane processes (etcd, apiserver, controllers, scheduler, KWOK)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import settings
from .pki import PKI


def etcd_argv(binary: Path, state_dir: Path, ports: Mapping[str, int]) -> list[str]:
    client = f"http://{settings.LOCALHOST}:{ports['etcd']}"
    peer = f"http://{settings.LOCALHOST}:{ports['etcd-peer']}"
    return [
        str(binary),
        "--name=default",
        f"--data-dir={state_dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_argv(binary: Path, state_dir: Path, pki: PKI, ports: Mapping[str, int]) -> list[str]:
    proxy_cert, proxy_key = pki.client_cert("front-proxy-client")
    return [
        str(binary),
        f"--etcd-servers=http://{settings.LOCALHOST}:{ports['etcd']}",
        f"--bind-address={settings.LOCALHOST}",
        f"--advertise-address={settings.LOCALHOST}",
        f"--secure-port={ports['kube-apiserver']}",
        f"--cert-dir={state_dir / 'pki'}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--requestheader-client-ca-file={pki.ca_cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={proxy_cert}",
        f"--proxy-client-key-file={proxy_key}",
        "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={settings.SERVICE_CIDR}",
        "--allow-privileged=true",
        # The apiserver cannot publish 127.0.0.1 as endpoint of the `kubernetes` Service.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def component_kubeconfig_flags(state_dir: Path, name: str) -> list[str]:
    kubeconfig = state_dir / f"{name}.kubeconfig"
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
    ]


def controller_manager_argv(
    binary: Path, state_dir: Path, pki: PKI, ports: Mapping[str, int]
) -> list[str]:
    return [
        str(binary),
        *component_kubeconfig_flags(state_dir, "kube-controller-manager"),
        f"--bind-address={settings.LOCALHOST}",
        f"--secure-port={ports['kube-controller-manager']}",
        "--controllers=*",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--service-cluster-ip-range={settings.SERVICE_CIDR}",
        "--profiling=false",
    ]


def scheduler_argv(binary: Path, state_dir: Path, ports: Mapping[str, int]) -> list[str]:
    return [
        str(binary),
        *component_kubeconfig_flags(state_dir, "kube-scheduler"),
        f"--bind-address={settings.LOCALHOST}",
        f"--secure-port={ports['kube-scheduler']}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kwok_argv(
    binary: Path, stages: Path, state_dir: Path, pod_cidr: str, ports: Mapping[str, int]
) -> list[str]:
    annotation = f"{settings.KWOK_NODE_ANNOTATION}={settings.KWOK_NODE_ANNOTATION_VALUE}"
    return [
        str(binary),
        f"--config={stages}",
        f"--kubeconfig={state_dir / 'kwok.kubeconfig'}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={annotation}",
        f"--cidr={pod_cidr}",
        f"--node-ip={settings.LOCALHOST}",
        "--node-lease-duration-seconds=40",
        f"--server-address={settings.LOCALHOST}:{ports['kwok']}",
    ]
