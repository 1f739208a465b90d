"""Pure builders of the Deployment and Service that serve a ModelPool on its GPUPool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetroute.crds import GPUPoolSpec, ModelPoolSpec
from fleetroute.crds.modelpool import Deploy
from fleetroute_operator import labels

Manifest = dict[str, Any]
HTTP_PORT_NAME = "http"
SHM_SIZE = "16Gi"


def owner_reference(owner: Mapping[str, Any]) -> Manifest:
    """A controller ownerReference to `owner`, so garbage collection removes what it owns."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def server_command(spec: ModelPoolSpec, deploy: Deploy) -> tuple[list[str], list[str]]:
    """Container command and args that start the engine on the model and port."""
    user = list(deploy.args)
    if spec.engine == "sglang":
        command = ["python3", "-m", "sglang.launch_server"]
        base = ["--model-path", spec.model, "--host", "0.0.0.0", "--port", str(deploy.port)]  # noqa: S104
        return command, [*base, *user] if "--model-path" not in user else user
    base = ["--model", spec.model, "--port", str(deploy.port)]
    return [], [*base, *user] if "--model" not in user else user


def node_affinity(selector: Mapping[str, str]) -> Manifest:
    """Required node affinity matching every label of the GPUPool's selector."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": key, "operator": "In", "values": [value]}
                            for key, value in sorted(selector.items())
                        ]
                    }
                ]
            }
        }
    }


def pod_security_context(deploy: Deploy) -> Manifest:
    """The servers' pod securityContext: the runtime's default seccomp profile, and non-root as
    the ModelPool asks (see Deploy.run_as_non_root for why it is off by default)."""
    context: Manifest = {
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": deploy.run_as_non_root,
    }
    if deploy.run_as_user is not None:
        context["runAsUser"] = deploy.run_as_user
    return context


def build_deployment(
    owner: Mapping[str, Any], spec: ModelPoolSpec, gpu_pool_name: str, gpu_pool: GPUPoolSpec
) -> Manifest:
    """The Deployment running a deployed ModelPool's servers on its GPUPool's nodes."""
    deploy = spec.deploy
    if deploy is None:
        raise ValueError("build_deployment needs a ModelPool with spec.deploy")
    name = owner["metadata"]["name"]
    pod_labels = labels.pool_labels(name, spec.model, spec.role, gpu_pool_name)
    gpus = str(deploy.gpus_per_replica)
    requests: dict[str, str] = {gpu_pool.gpu_resource: gpus}
    if deploy.resources and deploy.resources.cpu:
        requests["cpu"] = deploy.resources.cpu
    if deploy.resources and deploy.resources.memory:
        requests["memory"] = deploy.resources.memory
    command, args = server_command(spec, deploy)
    probe_port = {"port": HTTP_PORT_NAME, "path": "/health"}
    container: Manifest = {
        "name": "server",
        "image": deploy.image,
        "args": args,
        "ports": [{"name": HTTP_PORT_NAME, "containerPort": deploy.port, "protocol": "TCP"}],
        "env": [{"name": e.name, "value": e.value} for e in deploy.env],
        "resources": {"requests": requests, "limits": {gpu_pool.gpu_resource: gpus}},
        "readinessProbe": {"httpGet": probe_port, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": probe_port, "periodSeconds": 10, "failureThreshold": 6},
        # Loading weights takes minutes: the startup probe holds liveness off for up to 30 min.
        "startupProbe": {"httpGet": probe_port, "periodSeconds": 10, "failureThreshold": 180},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if command:
        container["command"] = command
    pod_spec: Manifest = {
        "containers": [container],
        # A model server never calls the Kubernetes API: it gets no token to leak.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(deploy),
        "affinity": node_affinity(gpu_pool.selector()),
        "tolerations": [
            t.model_dump(by_alias=True, exclude_none=True) for t in gpu_pool.tolerations
        ],
        "terminationGracePeriodSeconds": 60,
    }
    if deploy.gpus_per_replica > 1:
        # Tensor parallelism shares memory between GPU workers through /dev/shm.
        container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]  # noqa: S108
        pod_spec["volumes"] = [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": pod_labels,
            "annotations": {labels.MODEL_ANNOTATION: spec.model},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "replicas": deploy.replicas,
            "selector": {"matchLabels": {labels.MODELPOOL: name}},
            # GPUs are scarce: replace pods one at a time instead of surging new ones.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {labels.MODEL_ANNOTATION: spec.model},
                },
                "spec": pod_spec,
            },
        },
    }


def build_service(owner: Mapping[str, Any], spec: ModelPoolSpec) -> Manifest:
    """A ClusterIP Service in front of a deployed ModelPool's servers."""
    if spec.deploy is None:
        raise ValueError("build_service needs a ModelPool with spec.deploy")
    name = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": labels.pool_labels(name, spec.model, spec.role, spec.deploy.gpu_pool),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {labels.MODELPOOL: name},
            "ports": [
                {
                    "name": HTTP_PORT_NAME,
                    "port": spec.deploy.port,
                    "targetPort": HTTP_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }
