"""A worker host's engine that does not answer: 503 with Retry-After, and the host unhealthy in
``GET /braindrill/workers`` (no Docker Engine needed; a full queue and a wait past its limit, on
real containers: tests/docker/api/test_saturation.py)."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError


class TestEngineDown:
    @pytest.fixture
    def braindrill_config(self):
        return {
            "ExecutionEngine": {
                "hosts": [{"name": "gone", "url": "unix:///nonexistent/docker.sock"}],
                "docker_timeout_s": 2,
            }
        }

    async def test_engine_not_answering_is_503(self, jp_fetch):
        with pytest.raises(HTTPClientError) as e:
            await jp_fetch("lang", "python", method="POST", body="print(1)")
        assert e.value.code == 503
        assert "Retry-After" in e.value.response.headers
        assert "gone" in json.loads(e.value.response.body)["message"]
        workers = json.loads((await jp_fetch("braindrill", "workers")).body)
        assert workers["workers"][0]["healthy"] is False
        assert workers["workers"][0]["last_error"]
