"""Unit tests of the transfer machinery: retry decisions and waits, upload offsets, file slices as bodies."""

from __future__ import annotations

import email.utils
import io
import time

import pytest

from dockyard.registry.retry import (MAX_RETRY_AFTER, RetryPolicy, attempts_text, is_retryable_network_kind,
                                     is_retryable_status, parse_retry_after)
from dockyard.registry.upload import FileSlice, add_query, registry_offset


@pytest.mark.parametrize("status,retryable", [(429, True), (500, True), (502, True), (503, True), (504, True),
                                              (501, False), (505, False), (400, False), (404, False),
                                              (416, False), (200, False)])
def test_retryable_statuses(status, retryable):
    assert is_retryable_status(status) is retryable


def test_tls_and_dns_failures_are_not_retried():
    assert not is_retryable_network_kind("tls") and not is_retryable_network_kind("dns")
    assert is_retryable_network_kind("refused") and is_retryable_network_kind("timeout")


def test_retry_after_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= parse_retry_after(date, now=now) <= 30
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None and parse_retry_after("") is None


def test_backoff_grows_with_jitter_and_is_capped():
    policy = RetryPolicy(retries=5, base_delay=1.0, max_delay=4.0)
    for retry, ceiling in ((0, 1.0), (1, 2.0), (2, 4.0), (5, 4.0)):
        delays = {policy.delay(retry) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert policy.delay(0, "3") == 3.0  # the registry's Retry-After wins
    assert policy.delay(0, "100000") == MAX_RETRY_AFTER


def test_wait_sleeps_the_delay():
    slept: list[float] = []
    RetryPolicy(base_delay=0.0, sleep=slept.append).wait(0, "2")
    assert slept == [2.0]


def test_attempts_text():
    assert attempts_text(0) == "no retries" and attempts_text(3) == "4 attempts"


@pytest.mark.parametrize("header,expected", [("0-65535", 65536), ("bytes=0-99", 100), ("0-0", 0), (None, 42),
                                             ("garbage", 42)])
def test_registry_offset(header, expected):
    assert registry_offset(header, default=42) == expected


def test_add_query_keeps_the_upload_state():
    url = add_query("http://r/v2/a/blobs/uploads/u?_state=abc%3D", digest="sha256:00")
    assert url == "http://r/v2/a/blobs/uploads/u?_state=abc%3D&digest=sha256%3A00"


def test_file_slice_streams_a_window_and_reports_absolute_offsets():
    seen: list[int] = []
    body = FileSlice(io.BytesIO(bytes(range(100))), 10, 25, seen.append)
    assert len(body) == 25
    assert body.read(20) == bytes(range(10, 30))
    assert body.read(20) == bytes(range(30, 35))
    assert body.read(20) == b""
    assert seen[:2] == [30, 35]
    assert b"".join(FileSlice(io.BytesIO(bytes(range(100))), 90, 10, seen.append)) == bytes(range(90, 100))
