"""Per-request parsing stays bounded whatever the input: SSE lines, prompt-prefix hashing."""

from __future__ import annotations

from fleetroute_router import openai_api, prefix


def test_a_stream_line_that_never_ends_is_not_kept() -> None:
    usage = openai_api.StreamUsage()
    usage.feed(b'data: {"choices": []}\n')
    for _ in range(20):  # 2 MiB with no newline, in 100 KiB chunks
        usage.feed(b"x" * 100_000)
        assert len(usage._tail) <= openai_api.MAX_SSE_LINE
    usage.feed(b'still the same line\ndata: {"usage": {"prompt_tokens": 3, ')
    usage.feed(b'"completion_tokens": 5}}\n')
    assert usage.oversized == 1
    assert usage.events == 2
    assert usage.result() == openai_api.Usage(3, 5)


def test_prefix_hashes_of_a_huge_prompt_cover_only_the_blocks_kept() -> None:
    huge = "abcd" * 1_000_000  # 4M characters
    hashes = prefix.block_hashes(huge)
    assert len(hashes) == 1024
    assert hashes == prefix.block_hashes(huge[: 64 * 1024])
    assert prefix.block_hashes("é" * 64) == prefix.block_hashes("é" * 64 + "tail")[:2]
