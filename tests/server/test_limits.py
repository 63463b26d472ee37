"""What keeps one client from taking the server down, on real uvicorn servers over fake models: a body counted
as it arrives (chunked uploads), a body or headers that stop arriving, and the bound on requests in flight per
model (429 with Retry-After)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from backend.families import register_family
from backend.registry import ModelSpec
from backend.server.app import Admission, ApiError, ServerSettings, create_app
from backend.server.protocol import HeaderTimeoutH11, uvicorn_options
from tests.fakes import TEXT_VECTORS, FakeEncoder, fake_backend
from tests.server.live import live_server

ROOT = Path(__file__).resolve().parents[2]


def vec(text: str) -> np.ndarray:
    v = np.zeros(8, dtype=np.float32)
    for w in text.lower().split():
        v[sum(map(ord, w)) % 8] += 1
    return v


class Gated(FakeEncoder):
    """Encodes only once the test opens the gate: requests pile up in flight meanwhile."""

    gate = threading.Event()

    def _encode(self, texts, batch_size, show_progress_bar, progress):
        assert self.gate.wait(30), "the test never opened the gate"
        return super()._encode(texts, batch_size, show_progress_bar, progress)


register_family("fake_gated", Gated)


def make_app(settings: ServerSettings):
    TEXT_VECTORS["gated"] = vec
    be = fake_backend({"enc": vec})
    be.registry.add(ModelSpec("gated", "fake_gated", "gated", "path:gated", default=False))
    return be, create_app(be, settings)


def rss_bytes() -> int:
    """Resident memory of this process (the live server runs in it), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float, bool]:
    """Everything the server sends until it closes; (bytes, seconds, closed) — closed False if it never did."""
    t0 = time.monotonic()
    sock.settimeout(0.1)
    data = b""
    while time.monotonic() - t0 < limit_s:
        try:
            part = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, time.monotonic() - t0, True
        if not part:
            return data, time.monotonic() - t0, True
        data += part
    return data, time.monotonic() - t0, False


def json_error(raw: bytes) -> tuple[str, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, json.loads(body)["error"]


# ------------------------------------------------------------------------------------ body: size as it arrives
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads memory from /proc (Linux)")
def test_a_chunked_body_past_the_limit_is_refused_as_it_arrives():
    """500 MB sent chunked (no Content-Length) with a 1 MiB limit: a 413 within ~1 s, and neither the client
    nor the server moves more than the limit plus socket buffers."""
    limit, total, chunk = 2**20, 500 * 2**20, b"x" * 65536
    settings = ServerSettings(max_body_bytes=limit)
    _, app = make_app(settings)
    sent = 0

    def upload():
        nonlocal sent
        while sent < total:
            sent += len(chunk)
            yield chunk  # httpx stops pulling when the server answers and closes (it then reads the answer)

    peak, watching = [], threading.Event()

    def watch():
        while not watching.is_set():
            peak.append(rss_bytes())
            time.sleep(0.005)

    with live_server(app, **uvicorn_options(settings)) as url:
        before = rss_bytes()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        t0 = time.monotonic()
        r = httpx.post(f"{url}/v1/embeddings", content=upload(), headers={"content-type": "application/json"},
                       timeout=30)
        elapsed = time.monotonic() - t0
        watching.set()
        watcher.join(5)
        assert r.status_code == 413, r.text
        e = r.json()["error"]
        assert e["type"] == "too_large" and e["code"] == 413 and "1,048,576" in e["message"]
        assert r.headers["connection"] == "close"
        assert elapsed < 2.0, elapsed
        assert sent < limit + 8 * 2**20, f"{sent / 2**20:.1f} MiB sent before the 413"
        assert max(peak) - before < 50 * 2**20, f"memory grew {(max(peak) - before) / 2**20:.0f} MiB"
        # the server is still healthy and answers the next request
        assert httpx.post(f"{url}/v1/embeddings", json={"input": "ok", "model": "enc"}).status_code == 200


def test_a_declared_length_past_the_limit_is_refused_before_the_body():
    settings = ServerSettings(max_body_bytes=1000, body_timeout_s=5)
    _, app = make_app(settings)
    with live_server(app, **uvicorn_options(settings)) as url:
        with socket.create_connection((urlparse(url).hostname, urlparse(url).port)) as s:
            s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 5000000\r\n\r\n")  # and not a byte of the body
            raw, seconds, closed = read_until_closed(s, 5)
        status, headers, e = json_error(raw)
        assert status.startswith("HTTP/1.1 413") and e["type"] == "too_large" and "5,000,000 bytes" in e["message"]
        assert closed and seconds < 2 and headers["connection"] == "close"


def test_a_body_within_the_limit_sent_chunked_still_works():
    settings = ServerSettings(max_body_bytes=2**20)
    _, app = make_app(settings)
    body = json.dumps({"input": ["the cat sat"] * 5, "model": "enc"}).encode()

    def pieces():
        for i in range(0, len(body), 7):
            yield body[i:i + 7]

    with live_server(app, **uvicorn_options(settings)) as url, httpx.Client(base_url=url) as client:
        r = client.post("/v1/embeddings", content=pieces(), headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert len(r.json()["data"]) == 5
        # answers to whole requests keep the connection open
        assert "connection" not in r.headers and "connection" not in client.get("/health").headers


def test_an_answer_before_the_body_is_read_closes_the_connection():
    """A 404 for a 500 MB chunked upload: the server does not read (and discard) the rest to reuse the connection."""
    settings = ServerSettings(max_body_bytes=2**20)
    _, app = make_app(settings)
    sent, chunk = 0, b"x" * 65536

    def upload():
        nonlocal sent
        while sent < 500 * 2**20:
            sent += len(chunk)
            yield chunk

    with live_server(app, **uvicorn_options(settings)) as url:
        t0 = time.monotonic()
        r = httpx.post(f"{url}/v1/no-such-route", content=upload(), timeout=30)
        assert r.status_code == 404 and r.headers["connection"] == "close"
        assert time.monotonic() - t0 < 2 and sent < 16 * 2**20, sent


# ------------------------------------------------------------------------------------ body and headers: time
def test_a_body_that_stops_arriving_gets_a_408_and_the_connection_closes():
    settings = ServerSettings(body_timeout_s=1.0, header_timeout_s=5)
    _, app = make_app(settings)
    with live_server(app, **uvicorn_options(settings)) as url:
        with socket.create_connection((urlparse(url).hostname, urlparse(url).port)) as s:
            s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n" + b'{"input": ')  # 10 of the 1000 bytes, then nothing
            raw, seconds, closed = read_until_closed(s, 10)
        assert raw, "no answer within 10 s: the half-sent request was never timed out"
        status, headers, e = json_error(raw)
        assert status.startswith("HTTP/1.1 408"), status
        assert e["type"] == "timeout" and e["code"] == 408 and "SIMDASH_BODY_TIMEOUT_S" in e["message"]
        assert "after 10 bytes" in e["message"]
        assert closed and headers["connection"] == "close"
        assert 0.9 <= seconds < 3, seconds
        metrics = httpx.get(f"{url}/metrics").text
        assert 'simdash_requests_total{method="POST",route="/v1/embeddings",status="408"} 1.0' in metrics


def test_headers_that_stop_arriving_are_timed_out_and_idle_connections_closed():
    settings = ServerSettings(header_timeout_s=0.5, body_timeout_s=5)
    _, app = make_app(settings)
    with live_server(app, **uvicorn_options(settings)) as url:
        addr = (urlparse(url).hostname, urlparse(url).port)
        with socket.create_connection(addr) as s:
            s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\n")  # the blank line never comes
            raw, seconds, closed = read_until_closed(s, 10)
        status, headers, e = json_error(raw)
        assert status.startswith("HTTP/1.1 408") and headers["connection"] == "close"
        assert e["type"] == "timeout" and "SIMDASH_HEADER_TIMEOUT_S" in e["message"]
        assert closed and 0.4 <= seconds < 2.5, seconds
        with socket.create_connection(addr) as s:  # opens and sends nothing: closed without a word
            raw, seconds, closed = read_until_closed(s, 10)
        assert raw == b"" and closed and seconds < 2.5, seconds


def test_the_header_timeout_stops_once_headers_are_in():
    """A body that follows its headers after more than the header timeout (but within the body timeout) is served."""
    settings = ServerSettings(header_timeout_s=0.3, body_timeout_s=5)
    _, app = make_app(settings)
    body = json.dumps({"input": "the cat", "model": "enc"}).encode()
    with live_server(app, **uvicorn_options(settings)) as url:
        with socket.create_connection((urlparse(url).hostname, urlparse(url).port)) as s:
            s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                      b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
            time.sleep(1.0)
            s.sendall(body)
            raw, _, closed = read_until_closed(s, 10)
        assert raw.startswith(b"HTTP/1.1 200") and closed, raw[:200]
        assert len(json.loads(raw.partition(b"\r\n\r\n")[2])["data"]) == 1


def test_uvicorn_options_carry_the_header_timeout():
    http = uvicorn_options(ServerSettings(header_timeout_s=2.5))["http"]
    assert issubclass(http, HeaderTimeoutH11) and http.header_timeout_s == 2.5


# -------------------------------------------------------------------------------------- overload: 429
def test_requests_past_the_bound_get_429_at_once_then_room_frees():
    Gated.gate.clear()
    settings = ServerSettings(max_queue=2, load_wait_s=5)
    _, app = make_app(settings)
    results: dict[int, httpx.Response] = {}
    seconds: dict[int, float] = {}

    def post(i: int) -> None:
        t0 = time.monotonic()
        results[i] = httpx.post(url + "/v1/embeddings", json={"input": f"text number {i}", "model": "gated"},
                                timeout=30)
        seconds[i] = time.monotonic() - t0

    try:
        with live_server(app, **uvicorn_options(settings)) as url:
            threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            end = time.monotonic() + 20
            while len(results) < 4 and time.monotonic() < end:  # the refused four answer while two are held
                time.sleep(0.01)
            refused = dict(results)
            assert len(refused) == 4 and all(r.status_code == 429 for r in refused.values()), \
                {i: r.status_code for i, r in refused.items()}
            for i, r in refused.items():
                e = r.json()["error"]
                assert e["type"] == "overloaded" and e["code"] == 429 and "SIMDASH_MAX_QUEUE" in e["message"]
                assert r.headers["retry-after"] == "1"
                assert seconds[i] < 2, seconds[i]
            assert app.state.admission.in_flight() == {"gated": 2}
            health = httpx.get(url + "/health").json()
            assert health["in_flight"] == {"gated": 2} and health["limits"]["max_queue"] == 2
            assert 'simdash_requests_in_flight{model="gated"} 2.0' in httpx.get(url + "/metrics").text
            # the bound is per model: another model answers meanwhile
            assert httpx.post(url + "/v1/embeddings", json={"input": "x", "model": "enc"}).status_code == 200
            # a request naming several models is refused whole when one is full, and holds no place in the others
            r = httpx.post(url + "/v1/similarity", json={"pairs": [["a", "b"]], "models": ["enc", "gated"]})
            assert r.status_code == 429 and "'gated'" in r.json()["error"]["message"]
            assert app.state.admission.in_flight() == {"gated": 2}

            Gated.gate.set()
            for t in threads:
                t.join(30)
            codes = sorted(r.status_code for r in results.values())
            assert codes == [200, 200, 429, 429, 429, 429]
            assert app.state.admission.in_flight() == {}
            r = httpx.post(url + "/v1/embeddings", json={"input": "after the burst", "model": "gated"})
            assert r.status_code == 200 and len(r.json()["data"]) == 1
            assert 'simdash_requests_in_flight{model="gated"} 0.0' in httpx.get(url + "/metrics").text
    finally:
        Gated.gate.set()


def test_admission_holds_all_places_or_none_and_frees_them():
    adm = Admission(limit=1)
    with adm.admit(["a"]):
        with pytest.raises(ApiError) as exc, adm.admit(["b", "a"]):
            pass
        assert exc.value.status == 429 and exc.value.headers == {"Retry-After": "1"}
        assert adm.in_flight() == {"a": 1}  # "b" was not taken by the refused request
        with adm.admit(["b", "b"]):  # one request naming a model twice holds one place
            assert adm.in_flight() == {"a": 1, "b": 1}
    assert adm.in_flight() == {}
    with pytest.raises(RuntimeError), adm.admit(["a"]):
        raise RuntimeError("a failing request gives its place back")
    assert adm.in_flight() == {}


# -------------------------------------------------------------------------------------------- settings, docs
def test_new_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("SIMDASH_BODY_TIMEOUT_S", "2.5")
    monkeypatch.setenv("SIMDASH_HEADER_TIMEOUT_S", "4")
    monkeypatch.setenv("SIMDASH_MAX_QUEUE", "9")
    s = ServerSettings.from_env()
    assert (s.body_timeout_s, s.header_timeout_s, s.max_queue) == (2.5, 4.0, 9)
    d = ServerSettings()
    assert (d.body_timeout_s, d.header_timeout_s, d.max_queue) == (30.0, 10.0, 256)


def test_docs_name_every_variable_the_server_reads():
    source = (ROOT / "backend/server/app.py").read_text()
    read = set(re.findall(r'env\.get\("(SIMDASH_\w+)"', source))
    assert {"SIMDASH_MAX_BODY_MB", "SIMDASH_BODY_TIMEOUT_S", "SIMDASH_HEADER_TIMEOUT_S", "SIMDASH_MAX_QUEUE"} <= read
    docs = (ROOT / "docs/server.md").read_text()
    table_rows = {m for m in re.findall(r"^\| `(SIMDASH_\w+)`", docs, flags=re.M)}
    assert read <= table_rows, f"not in a settings table of docs/server.md: {sorted(read - table_rows)}"
