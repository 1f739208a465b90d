"""Benchmark child processes: what a child wrote is kept when asked for, for failing tests."""

from __future__ import annotations

from fleetroute_router.bench import harness


async def test_a_child_started_with_a_log_keeps_its_output() -> None:
    children = harness.Children()
    try:
        script = "import sys; print('to stdout'); sys.exit('to stderr')"
        process = await children.python("-c", script, log="child.log")
        assert await process.wait() == 1
        assert children.log_tail("child.log").splitlines() == ["to stdout", "to stderr"]
        assert children.log_tail("child.log", lines=1) == "to stderr"
        assert children.log_tail("never-written.log") == ""
    finally:
        await children.close()
