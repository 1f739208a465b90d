"""Fuzzed inputs to the request parsing the proxy and ext_proc share (openai_api)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetroute_router import openai_api
from tests.fuzzing import examples, json_values


@settings(max_examples=examples(300))
@given(raw=st.binary(max_size=300) | json_values().map(lambda v: json.dumps(v).encode()))
def test_load_body_returns_json_or_raises_value_error(raw: bytes) -> None:
    try:
        document = openai_api.load_body(raw)
    except ValueError:
        return
    # Compared as JSON text: NaN (which json accepts) is not equal to itself.
    assert json.dumps(document) == json.dumps(json.loads(raw))


@pytest.mark.parametrize("depth", [65, 5_000, 500_000])
def test_nesting_beyond_the_limit_is_a_value_error(depth: int) -> None:
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        openai_api.load_body(b"[" * depth + b"]" * depth)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    raw = b'{"a": ' + b"[" * 63 + b"]" * 63 + b"}"
    assert openai_api.load_body(raw) == json.loads(raw)


@settings(max_examples=examples(300))
@given(
    body=st.dictionaries(
        st.sampled_from(["messages", "prompt", "max_tokens", "max_completion_tokens"])
        | st.text(max_size=8),
        json_values(),
        max_size=5,
    )
)
def test_prompt_and_max_tokens_of_any_object(body: dict[str, object]) -> None:
    assert isinstance(openai_api.prompt_text(body), str)
    tokens = openai_api.max_tokens(body)
    assert isinstance(tokens, int)
    assert tokens >= 0


@settings(max_examples=examples(200))
@given(
    chunks=st.lists(
        st.binary(max_size=80)
        | st.sampled_from(
            [
                b"data: ",
                b'data: {"usage": ',
                b"\n",
                b'{"usage": {"prompt_tokens": "x"}}\n',
                b"[DONE]\n",
            ]
        ),
        max_size=8,
    )
)
def test_stream_usage_follows_any_chunks(chunks: list[bytes]) -> None:
    usage = openai_api.StreamUsage()
    for chunk in chunks:
        usage.feed(chunk)
    result = usage.result()
    assert result is None or isinstance(result, openai_api.Usage)
