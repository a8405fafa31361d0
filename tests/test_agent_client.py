"""The agent's transport against real HTTP servers on 127.0.0.1: what it refuses to use.

A redirect is never followed (the token stays with `--server`), and an answer too large or
too deeply nested is a clear `AnswerRefused`, never a crash or an unbounded read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from reconciler.agent.client import (
    MAX_ANSWER_BYTES,
    MAX_ANSWER_DEPTH,
    AnswerRefused,
    ReconcilerClient,
    ReportRejected,
    ServerUnreachable,
    plaintext_warning,
)
from tests.agent_http import ASSIGNMENT, Reply, serving


def test_a_plain_answer_is_the_assignment() -> None:
    with serving(Reply) as server:
        assert ReconcilerClient(server.url, "t0ken").report({"x": 1}) == ASSIGNMENT
    assert server.requests == [("POST", "/v1/report", "Bearer t0ken")]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_the_token_never_leaves(status: int) -> None:
    with serving(Reply) as elsewhere:
        target = elsewhere.url + "/v1/report"
        with serving(lambda: Reply(status, {"Location": target}, ())) as server:
            client = ReconcilerClient(server.url, "s3cret")
            with pytest.raises(AnswerRefused) as refused:
                client.report({"x": 1})
    assert elsewhere.requests == []  # neither the token nor the report went there
    message = str(refused.value)
    assert f"HTTP {status} redirect to {target}" in message
    assert "does not follow redirects" in message
    assert "s3cret" not in message


def test_a_declared_oversized_answer_is_refused_before_reading_it() -> None:
    body = json.dumps({**ASSIGNMENT, "pad": "x" * MAX_ANSWER_BYTES}).encode()
    big = Reply(headers={"Content-Length": str(len(body))}, chunks=(body,))
    with serving(lambda: big) as server, pytest.raises(AnswerRefused, match="larger than 1 MiB"):
        ReconcilerClient(server.url, "t").report({})


def test_an_endless_answer_is_cut_off_at_the_cap() -> None:
    # No Content-Length: the body runs until the server closes, 32 MiB of valid JSON.
    def endless() -> Iterator[bytes]:
        yield b'{"action": "none", "pad": "'
        for _ in range(32 * 16):
            yield b"x" * 65536
        yield b'"}'

    with (
        serving(lambda: Reply(chunks=endless())) as server,
        pytest.raises(AnswerRefused, match="larger than 1 MiB"),
    ):
        ReconcilerClient(server.url, "t").report({})
    assert server.finished_sending == [False]  # the agent hung up instead of reading it all


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"target": ' + b"[" * (MAX_ANSWER_DEPTH + 1) + b"]" * (MAX_ANSWER_DEPTH + 1) + b"}",
    ],
    ids=["deep-list", "deep-object", "just-over-the-limit"],
)
def test_a_deeply_nested_answer_is_refused_not_a_recursion_error(body: bytes) -> None:
    with (
        serving(lambda: Reply(chunks=(body,))) as server,
        pytest.raises(AnswerRefused, match=f"nested deeper than {MAX_ANSWER_DEPTH}"),
    ):
        ReconcilerClient(server.url, "t").report({})


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    answer = {**ASSIGNMENT, "reason": {"message": '[[[[{{{{\\"' * 1000}}
    with serving(lambda: Reply(chunks=(json.dumps(answer).encode(),))) as server:
        assert ReconcilerClient(server.url, "t").report({}) == answer


def test_the_body_of_an_error_answer_is_read_only_in_part() -> None:
    def huge_error() -> Iterator[bytes]:
        yield b"no such host: "
        for _ in range(32 * 16):
            yield b"x" * 65536

    with (
        serving(lambda: Reply(403, {}, huge_error())) as server,
        pytest.raises(ReportRejected, match="HTTP 403: no such host") as rejected,
    ):
        ReconcilerClient(server.url, "t").report({})
    assert len(str(rejected.value)) < 1000
    assert server.finished_sending == [False]


def test_refusals_are_server_trouble_so_the_agent_backs_off() -> None:
    assert issubclass(AnswerRefused, ServerUnreachable)


@pytest.mark.parametrize(
    ("server", "warned"),
    [
        ("http://fleet.example.net:8080", True),
        ("http://10.0.0.5", True),
        ("HTTP://Fleet.Example.Net", True),
        ("https://fleet.example.net", False),
        ("http://127.0.0.1:8080", False),
        ("http://127.8.9.10", False),
        ("http://localhost:8080", False),
        ("http://[::1]:8080", False),
    ],
)
def test_plain_http_to_another_host_is_warned_about(server: str, warned: bool) -> None:
    warning = plaintext_warning(server)
    assert (warning is not None) == warned
    if warning:
        assert "token" in warning
        assert "https://" in warning
