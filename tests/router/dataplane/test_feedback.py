"""POST /v1/feedback through the real proxy: what a client can rely on, and what it teaches."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router.auth import TokenFile
from fleetroute_router.policies.bandits import LinearBandit
from fleetroute_router.sim.model import ServerModel

FEEDBACK = "/v1/feedback"
CHAT = "/v1/chat/completions"


async def _served(bed: Any, make_chat: Any) -> tuple[str, str]:
    """One answered request of the alias; its decision id and request id."""
    status, headers, _ = await bed.post(CHAT, make_chat("fleet/chat"))
    assert status == 200
    return headers["x-fleetroute-decision-id"], headers["x-request-id"]


@pytest.fixture
async def graded_bed(bed: Any) -> Any:
    await bed.pool("small", "test/small-8B")
    await bed.pool("large", "test/large-70B", product="NVIDIA-H100")
    bed.policy("fleet/chat", ["small", "large"], algorithm="linucb", window_s=0.5)
    await bed.serve()
    return bed


async def test_feedback_is_learned_once_per_source(graded_bed: Any, make_chat: Any) -> None:
    bed = graded_bed
    decision_id, request_id = await _served(bed, make_chat)
    grade = {"decision_id": decision_id, "score": 0.9, "source": "judge"}
    status, _, body = await bed.post(FEEDBACK, grade)
    assert status == 200
    assert body["status"] == "accepted"
    assert body["policy"] == "fleet/chat"
    assert body["pool"] in {"small", "large"}
    assert (await bed.post(FEEDBACK, grade))[2]["status"] == "duplicate"
    status, _, body = await bed.post(FEEDBACK, {**grade, "score": 0.1})
    assert status == 409
    assert "conflicts" in body["error"]["message"]
    # Another source may grade the same answer; a request id names it too.
    by_request = {"request_id": request_id, "label": "good", "source": "user"}
    assert (await bed.post(FEEDBACK, by_request))[2]["status"] == "accepted"
    selector = bed.dataplane.core.selectors()["fleet/chat"]
    assert isinstance(selector, LinearBandit)
    assert selector.model.observations[0].sum() == 2.0  # judge 0.9 and user 1.0, nothing twice
    counted = bed.dataplane.telemetry.metrics.feedback
    assert counted.labels("fleet/chat", "judge", "accepted")._value.get() == 1
    assert counted.labels("fleet/chat", "judge", "duplicate")._value.get() == 1
    assert counted.labels("fleet/chat", "judge", "conflict")._value.get() == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({"decision_id": "x", "score": 0.5, "stars": 5}, "unknown field 'stars'"),
        ({"score": 0.5}, "is required"),
        ({"decision_id": "x", "score": 1.5}, r"score must be in [0, 1]"),
        ({"decision_id": "x", "score": "high"}, "must be a number"),
        ({"decision_id": "x", "score": True}, "must be a number"),
        ({"decision_id": "x", "label": "meh"}, "label must be one of"),
        ({"decision_id": "x"}, "exactly one of"),
        ({"decision_id": "x", "score": 1, "label": "good"}, "exactly one of"),
        ({"decision_id": "x", "score": 1, "source": "bot"}, "source must be one of"),
        ({"decision_id": "x", "score": 1, "metadata": {"k": 1}}, "must be strings"),
        ({"decision_id": 7, "score": 1}, "must be strings"),
    ],
)
async def test_a_bad_body_is_422_and_changes_nothing(
    graded_bed: Any, body: Any, fragment: str
) -> None:
    status, _, reply = await graded_bed.post(FEEDBACK, body)
    assert status == 422
    assert fragment in reply["error"]["message"]
    assert reply["error"]["code"] == "invalid_feedback"


async def test_unknown_and_expired_decisions_are_404(graded_bed: Any, make_chat: Any) -> None:
    bed = graded_bed
    status, _, reply = await bed.post(FEEDBACK, {"decision_id": "never-made", "score": 1.0})
    assert status == 404
    assert reply["error"]["code"] == "decision_not_found"
    decision_id, _ = await _served(bed, make_chat)
    await asyncio.sleep(0.6)  # the policy's feedback window is 0.5 s
    status, _, reply = await bed.post(FEEDBACK, {"decision_id": decision_id, "score": 1.0})
    assert status == 404
    assert "feedback window" in reply["error"]["message"]
    expired = bed.dataplane.telemetry.metrics.feedback.labels("", "user", "expired")
    assert expired._value.get() == 1


async def test_feedback_needs_the_token_when_one_is_set(
    bed: Any, make_chat: Any, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("grader-token\n")
    await bed.pool("small", "test/small-8B")
    bed.policy("fleet/chat", ["small"], algorithm="linucb")
    await bed.serve(feedback_token=TokenFile(token))
    decision_id, _ = await _served(bed, make_chat)
    grade = {"decision_id": decision_id, "score": 1.0}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "grader-token"}):
        status, _, reply = await bed.post(FEEDBACK, grade, headers=headers)
        assert status == 401
        assert reply["error"]["type"] == "authentication_error"
    status, _, reply = await bed.post(
        FEEDBACK, grade, headers={"Authorization": "Bearer grader-token"}
    )
    assert (status, reply["status"]) == (200, "accepted")


async def test_a_request_may_override_the_objective(graded_bed: Any, make_chat: Any) -> None:
    bed = graded_bed
    header = {"x-fleetroute-objective": "energy=1"}
    status, _, _ = await bed.post(CHAT, make_chat("fleet/chat"), headers=header)
    assert status == 200
    bad = {"x-fleetroute-objective": "speed=1"}
    status, _, reply = await bed.post(CHAT, make_chat("fleet/chat"), headers=bad)
    assert status == 400
    assert "x-fleetroute-objective" in reply["error"]["message"]


MATH = "Solve for x: 3x + 7 = 22. Show the steps."
CHIT_CHAT = "Hey! How was your weekend? Tell me something fun."


async def test_with_quality_feedback_the_split_follows_the_prompt_kind(
    bed: Any, make_chat: Any
) -> None:
    """The collapse once seen with `make serve`: after a streamed request or two, the SLO guard
    set the L4 pool aside for good (TPOT above the SLO even when idle) and 95% went to the big
    pool whatever the prompt. Now a pool slow by nature stays a candidate, and the grades decide.
    """
    big = ServerModel.of("test/big-70B", "NVIDIA-H100", gpus=4).decode_step_s(1)
    small = ServerModel.of("test/small-8B", "NVIDIA-L4").decode_step_s(1)
    assert small > big
    speed = 0.05
    await bed.pool("small", "test/small-8B", speed=speed)
    await bed.pool("big", "test/big-70B", product="NVIDIA-H100", speed=speed)
    bed.policy(
        "fleet/chat",
        ["small", "big"],
        algorithm="linucb",
        objective=config_pb2.Objective(quality=0.5, latency=0.2, energy=0.2, cost=0.1),
        tpot_s=speed * (big + small) / 2,  # the L4 misses it even idle, the H100 meets it
        parameters={"alpha": 0.3, "seed": 3},
    )
    await bed.serve()
    # The big model solves maths, the small one chats as well and is far cheaper.
    quality = {("big", "math"): 1.0, ("small", "math"): 0.1, ("big", "chat"): 0.6}
    quality[("small", "chat")] = 0.9
    late: Counter[tuple[str, str]] = Counter()
    steps = 240
    for step in range(steps):
        kind, prompt = ("math", MATH) if step % 2 else ("chat", CHIT_CHAT)
        body = make_chat("fleet/chat", prompt, max_tokens=8, stream=step % 30 == 0)
        status, headers, _ = await bed.post(CHAT, body)
        assert status == 200
        pool = headers["x-fleetroute-pool"]
        grade = {"decision_id": headers["x-fleetroute-decision-id"], "score": quality[pool, kind]}
        assert (await bed.post(FEEDBACK, grade))[0] == 200
        if step >= steps - 60:
            late[pool, kind] += 1
    assert late["big", "math"] >= 0.8 * 30
    assert late["small", "chat"] >= 0.8 * 30
