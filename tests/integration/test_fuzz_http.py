"""Thousands of malformed requests against the real service: never a 5xx, never a traceback, only `failed` events.

Property-based (hypothesis): paths, specs, query strings and headers built from the characters
that break parsers (slashes, dots, percent signs, encoded control characters, quotes, unicode).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binder_actors.providers import PROVIDERS

NASTY = "/%.-_~:@!$&'()*+,;=?#[] \"<>\\^`{|}\t\n\x00\x7féü☃𝔘"
FUZZ = settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck), database=None)

fragments = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(NASTY), max_size=60)
encoded = fragments.map(lambda text: quote(text, safe="/%:@"))  # what a client can put on the wire
providers = st.sampled_from(sorted(PROVIDERS)) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz%./-", max_size=12)
query_values = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(NASTY), max_size=40)
queries = st.dictionaries(
    st.sampled_from(["urlpath", "labpath", "filepath", "build_only", "build_token", "x"]), query_values, max_size=3
)
# Bytes a client may send in a header value (HTTP allows visible ASCII, space, tab and obs-text).
header_values = st.binary(max_size=80).map(lambda raw: bytes(b for b in raw if 32 <= b <= 126 or b >= 128).strip())


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        yield client


def assert_no_crash(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.url, response.status_code, response.text[:500])
    assert "Traceback" not in response.text and 'File "' not in response.text, response.text[:500]


def events_of(response: httpx.Response) -> list[dict]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


@FUZZ
@given(provider=providers, spec=encoded, query=queries, last_event_id=header_values)
def test_malformed_build_requests_end_in_a_failed_event(http, provider, spec, query, last_event_id):
    response = http.get(
        f"build/{provider}/{spec}",
        params=query,
        headers={"Accept": "text/event-stream", "Last-Event-ID": last_event_id},
    )
    assert_no_crash(response)
    if response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream"):
        events = events_of(response)
        assert events, response.text[:300]
        phases = {event["phase"] for event in events}
        assert phases <= {"failed", "waiting"}, events  # nothing malformed resolves, builds or launches
        final = events[-1]
        assert final["phase"] == "failed" and final["message"].strip()
        assert final.get("status_code") != 500, final  # 500 means we crashed


@FUZZ
@given(provider=providers, spec=encoded, query=queries)
def test_malformed_launch_pages_answer_without_crashing(http, provider, spec, query):
    response = http.get(f"v2/{provider}/{spec}", params=query)
    assert_no_crash(response)
    assert response.status_code in (200, 307, 400, 403, 404, 429), response.status_code  # 307: a path normalised away


@FUZZ
@given(path=encoded, accept=header_values)
def test_any_path_answers_without_crashing(http, path, accept):
    response = http.get("/" + path.lstrip("/"), headers={"Accept": accept})  # always relative to the service
    assert_no_crash(response)
