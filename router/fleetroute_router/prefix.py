"""Prompt-prefix blocks: a chain hash per fixed-size block, so equal prefixes give equal keys."""

from __future__ import annotations

import zlib

DEFAULT_BLOCK_CHARS = 64  # about 16 tokens


def block_hashes(text: str, block_chars: int = DEFAULT_BLOCK_CHARS, limit: int = 1024) -> list[int]:
    """Hash of each whole block of text, each chained on the ones before (at most `limit`)."""
    hashes: list[int] = []
    previous = 0
    # Only the characters the blocks can cover are encoded (a character is at least one byte).
    data = text[: block_chars * limit].encode("utf-8", "surrogatepass")
    for start in range(0, min(len(data) // block_chars, limit) * block_chars, block_chars):
        previous = zlib.crc32(data[start : start + block_chars], previous)
        hashes.append(previous)
    return hashes
