"""``python -m backend serve``: an address other machines reach needs an API key or ``--insecure``; the server's
limits reach uvicorn. uvicorn is never started here (``uvicorn.run`` is replaced)."""

from __future__ import annotations

import numpy as np
import pytest
import uvicorn

import backend.serving
from backend.cli import main
from backend.server import is_loopback
from backend.server.protocol import HeaderTimeoutH11
from tests.fakes import fake_backend


@pytest.fixture
def started(monkeypatch):
    """Calls to ``uvicorn.run`` (recorded, not run), with no API key in the environment and a fake backend."""
    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setattr(backend.serving, "Backend", lambda device=None: fake_backend({"enc": lambda t: np.ones(8)}))
    for var in ("SIMDASH_API_KEY", "SIMDASH_HEADER_TIMEOUT_S"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # serve sets it; restored after the test
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "gpu-box.example.org", ""])
def test_an_exposed_address_without_a_key_is_refused(started, capsys, host):
    assert main(["serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: refusing to listen on"), err
    for word in ("SIMDASH_API_KEY", "--api-key", "--insecure"):
        assert word in err, word
    assert started == []  # uvicorn never started


def test_insecure_serves_it_open_with_the_warning(started, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--insecure", "--port", "8123"]) == 0
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0 without an API key" in err and "error" not in err
    ((_, kw),) = started
    assert kw["host"] == "0.0.0.0" and kw["port"] == 8123


@pytest.mark.parametrize("argv", [["--host", "0.0.0.0", "--api-key", "k"], ["--host", "127.0.0.1"],
                                  ["--host", "localhost"], ["--host", "::1"], ["--host", "127.0.0.2"], []])
def test_a_key_or_a_loopback_address_starts_without_a_warning(started, capsys, argv):
    assert main(["serve", *argv]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and "error" not in err
    assert len(started) == 1


def test_a_key_from_the_environment_is_enough(started, capsys, monkeypatch):
    monkeypatch.setenv("SIMDASH_API_KEY", "from-env")
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    assert len(started) == 1


def test_serve_passes_the_header_timeout_to_uvicorn(started, monkeypatch):
    monkeypatch.setenv("SIMDASH_HEADER_TIMEOUT_S", "3")
    assert main(["serve"]) == 0
    ((_, kw),) = started
    assert issubclass(kw["http"], HeaderTimeoutH11) and kw["http"].header_timeout_s == 3.0


def test_is_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "", "192.168.0.1", "example.org", "localhost.evil.com"]))
