"""The settings the operator gives kopf at start-up: timeouts, and scanning by mode."""

from __future__ import annotations

import logging

import kopf

from fleetroute_operator import handlers
from fleetroute_operator.settings import Settings
from tests.controller.fakes import FakeKube


def test_kopfs_own_api_calls_are_bounded() -> None:
    settings = kopf.OperatorSettings()
    handlers._configure(settings=settings)
    assert settings.networking.request_timeout == handlers.REQUEST_TIMEOUT_S
    assert settings.networking.connect_timeout == handlers.CONNECT_TIMEOUT_S
    assert settings.watching.connect_timeout == handlers.CONNECT_TIMEOUT_S
    server_timeout = settings.watching.server_timeout
    assert server_timeout is not None
    assert settings.watching.client_timeout == server_timeout + 30


def test_namespace_scoped_kopf_does_not_scan_namespaces_or_crds() -> None:
    """Scanning would need cluster-wide list and watch of namespaces and CRDs."""
    for namespaces, scanning_disabled in (((), False), (("llm",), True)):
        settings = kopf.OperatorSettings()
        state = handlers.State(FakeKube(), Settings(namespaces=namespaces))
        handlers._configure(settings=settings, memo=kopf.Memo(state=state))
        assert settings.scanning.disabled is scanning_disabled


def test_warnings_and_errors_are_posted_as_events() -> None:
    settings = kopf.OperatorSettings()
    handlers._configure(settings=settings)
    assert settings.posting.enabled
    assert settings.posting.loggers
    assert settings.posting.level == logging.WARNING
