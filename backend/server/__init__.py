"""The backend as an HTTP service: ``python -m backend serve [--host 127.0.0.1] [--port 8000] [--models ...]``.

* :mod:`backend.server.app` — the FastAPI app (:func:`~backend.server.app.create_app`) and its limits;
* :mod:`backend.server.schemas` — request and response bodies (they write the OpenAPI page at ``/docs``);
* :mod:`backend.server.metrics` — Prometheus metrics at ``/metrics``;
* :mod:`backend.server.protocol` — uvicorn's HTTP protocol with a timeout on request headers.

The Python client with the :class:`~backend.serving.Backend` interface is :mod:`backend.serving.client`; docs/server.md
has every route with a curl example. This module only registers the ``serve`` command: FastAPI and uvicorn are
imported when the server starts, so the rest of the CLI works without them.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from backend.cli import command


@command("serve", "serve the models over HTTP (OpenAI-compatible /v1/embeddings, /v1/similarity, /v1/rerank, ...)")
def run_serve(args: argparse.Namespace) -> int:
    # OpenMP threads that spin between parallel regions (libgomp's default) starve the forward pass itself when
    # the CPU is shared: on our 2-core machine under load, merged batches ran 3-5x slower with spinning than
    # with sleeping workers (bench/bench_server.py). Read when torch loads its OpenMP runtime, so set it first;
    # an explicit OMP_WAIT_POLICY wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import uvicorn

        from backend.server.app import ServerSettings, create_app
        from backend.server.protocol import uvicorn_options
    except ModuleNotFoundError as exc:
        print(f"error: {exc.name} is not installed; run `pip install -r requirements.txt`", file=sys.stderr)
        return 2
    from backend.serving import Backend

    preload = tuple(k.strip() for k in (args.models or "").split(",") if k.strip())
    settings = ServerSettings.from_env(api_key=args.api_key, max_texts=args.max_texts, max_chars=args.max_chars,
                                       preload=preload)
    if not is_loopback(args.host) and not settings.api_key:
        if not args.insecure:
            print(f"error: refusing to listen on {args.host} without an API key (anyone who can reach the port could "
                  "use the models): set SIMDASH_API_KEY or --api-key, or pass --insecure to serve it open anyway",
                  file=sys.stderr)
            return 2
        print(f"warning: listening on {args.host} without an API key (--insecure): anyone who can reach this port "
              "can use the models", file=sys.stderr)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    be = Backend(device=args.device)
    app = create_app(be, settings)
    print(f"serving on http://{args.host}:{args.port} (device {be.device}; API docs at /docs; models load "
          f"{'in the background: ' + ', '.join(preload) if preload else 'on first use'})", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                **uvicorn_options(settings))
    return 0


def is_loopback(host: str) -> bool:
    """True when binding ``host`` reaches this machine only (127.0.0.0/8, ::1, localhost).

    Any other name counts as exposed: a host name may resolve to a public address, and ``""`` or ``0.0.0.0``
    bind every interface.
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _configure_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; any other address needs an API key "
                   "or --insecure)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--models", default=None, help="comma-separated keys to load in the background at start "
                   "(others load on first use)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    p.add_argument("--api-key", default=None, help="bearer token required on every route but /health "
                   "(default: $SIMDASH_API_KEY; none = open)")
    p.add_argument("--insecure", action="store_true", help="serve a non-loopback --host without an API key "
                   "(refused otherwise: anyone who can reach the port could use the models)")
    p.add_argument("--max-texts", type=int, default=None, help="texts per request (default $SIMDASH_MAX_TEXTS or 10000)")
    p.add_argument("--max-chars", type=int, default=None, help="characters per text (default $SIMDASH_MAX_CHARS or 20000)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                   help="log every request (--no-access-log for benchmarks)")


run_serve.configure = _configure_serve
