"""Static checks of the Dockerfile (no container engine here): stages, base, user, secrets."""

from __future__ import annotations

import io
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
PINNED = re.compile(
    r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[a-f0-9]{64})?$|^[\w./-]+@sha256:[a-f0-9]{64}$"
)
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|make|build-essential|apt-get|apk|yum|dnf|pip3? install|-m pip install|"
    r"python -m build)\b"
)
SECRET_WORDS = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)
SECRET_FILES = re.compile(r"(\.env\b|id_rsa|\.pem\b|\.key\b|kubeconfig|\.netrc|\.npmrc|\.pypirc)")
OCI_LABELS = ("title", "description", "licenses", "source", "version", "revision")


def stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    """The instructions of each build stage, in order."""
    found: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def parse(text: str) -> DockerfileParser:
    """A parser over `text` (a file object: given a path, DockerfileParser may write to it)."""
    return DockerfileParser(fileobj=io.BytesIO(text.encode()))


def problems(text: str) -> list[str]:
    """Everything this project's Dockerfile must not do; empty when it is fine."""
    parser = parse(text)
    found = []
    all_stages = stages(parser)
    if len(all_stages) < 2:
        found.append("not multi-stage")
    for image in parser.parent_images:
        if not PINNED.match(image) or ":latest" in image:
            found.append(f"unpinned base image {image}")
    final = all_stages[-1] if all_stages else []
    build = all_stages[0] if all_stages else []
    if not any(
        i["instruction"] == "RUN" and re.search(r"python -m build|pip wheel", i["value"])
        for i in build
    ):
        found.append("the first stage builds no wheel")
    users = [i["value"].strip() for i in final if i["instruction"] == "USER"]
    if not users:
        found.append("no USER in the final stage")
    else:
        user = users[-1].split(":")[0]
        if not user.isdigit() or int(user) == 0:
            found.append(f"final USER {users[-1]} is not a numeric non-root user")
    for i in final:
        if i["instruction"] == "RUN" and BUILD_TOOLS.search(i["value"]):
            found.append(f"build tooling in the final stage: {i['value']}")
        if i["instruction"] in ("COPY", "ADD") and "--from=" not in i["value"]:
            found.append(f"the final stage copies from the build context: {i['value']}")
    for i in parser.structure:
        if i["instruction"] in ("ENV", "ARG", "LABEL") and SECRET_WORDS.search(i["value"]):
            found.append(f"secret-like {i['instruction']}: {i['value']}")
        if i["instruction"] in ("COPY", "ADD") and SECRET_FILES.search(i["value"]):
            found.append(f"secret-like file copied: {i['value']}")
    entrypoint = [i["value"] for i in final if i["instruction"] == "ENTRYPOINT"]
    if entrypoint != ['["fleetroute"]']:
        found.append(f"ENTRYPOINT is {entrypoint}, not the exec form of fleetroute")
    labels = parser.labels
    found += [
        f"missing OCI label {name}"
        for name in OCI_LABELS
        if not labels.get(f"org.opencontainers.image.{name}")
    ]
    return found


def test_the_dockerfile_has_no_problem() -> None:
    assert problems((ROOT / "Dockerfile").read_text()) == []


def test_image_version_label_is_the_package_and_chart_version() -> None:
    parser = parse((ROOT / "Dockerfile").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    chart = yaml.safe_load((ROOT / "charts" / "fleetroute" / "Chart.yaml").read_text())
    assert parser.labels["org.opencontainers.image.version"] == project["version"]
    assert chart["appVersion"] == project["version"]


def test_build_context_holds_only_what_the_build_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "the context starts from nothing and lists what it needs"
    allowed = {line.lstrip("!").rstrip("/") for line in ignore if line.startswith("!")}
    parser = parse((ROOT / "Dockerfile").read_text())
    copied = {
        source.rstrip("/")
        for i in parser.structure
        if i["instruction"] == "COPY" and "--from=" not in i["value"]
        for source in i["value"].split()[:-1]
    }
    assert copied == allowed


GOOD = (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(lambda t: t.replace("USER 65532:65532", "USER root"), "USER root", id="root"),
        pytest.param(lambda t: t.replace("USER 65532:65532\n", ""), "no USER", id="no-user"),
        pytest.param(
            lambda t: t.replace("python:3.11.14-slim-bookworm", "python:3-slim"),
            "unpinned",
            id="unpinned-base",
        ),
        pytest.param(
            lambda t: t.replace(
                "COPY --from=build", "RUN apt-get install -y gcc\nCOPY --from=build"
            ),
            "build tooling",
            id="compiler-in-final-stage",
        ),
        pytest.param(
            lambda t: t.replace("ARG REVISION=unknown", "ARG GITHUB_TOKEN=x"),
            "secret-like",
            id="secret-arg",
        ),
        pytest.param(
            lambda t: t.replace("COPY --from=build", "COPY .env /app/.env\nCOPY --from=build"),
            "secret-like file",
            id="secret-file",
        ),
        pytest.param(
            lambda t: t.replace('ENTRYPOINT ["fleetroute"]', "ENTRYPOINT fleetroute"),
            "ENTRYPOINT",
            id="shell-entrypoint",
        ),
        pytest.param(
            lambda t: t.split("\nFROM ${PYTHON_IMAGE}\n")[0],
            "not multi-stage",
            id="single-stage",
        ),
    ],
)
def test_the_checks_catch_a_bad_dockerfile(change: Any, problem: str) -> None:
    bad = change(GOOD)
    assert bad != GOOD
    assert any(problem in p for p in problems(bad)), problems(bad)
