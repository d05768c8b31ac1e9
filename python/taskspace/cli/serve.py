"""``taskspace serve``: a task space file over HTTP (search, select, embed, metrics)."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from taskspace.cli import CliError, ExitCode

_EXAMPLE = """\
example:
  taskspace serve --space space.sqlite --port 8080 --read-only
  curl -s http://127.0.0.1:8080/v1/search -d '{"name": "sst2", "k": 5, "kind": "model"}'
  curl -s http://127.0.0.1:8080/v1/select -d '{"dataset": "sst2"}'
  curl -s http://127.0.0.1:8080/v1/embed \\
    -d '{"pairs": [["a fine film", "pos"], ["a dull film", "neg"]], "name": "mine"}'

Endpoints: POST /v1/embed, /v1/search, /v1/select, /v1/reload; GET /v1/tasks, /healthz, /metrics;
POST /v1/tasks and DELETE /v1/tasks/NAME unless --read-only. Errors are JSON:
{"error": {"code": "...", "message": "..."}}. Reference: docs/serve.md.

Authentication: set TASKSPACE_TOKEN to a secret and every request but /healthz must carry
'Authorization: Bearer <token>'. It is required to listen on anything but loopback (the command
refuses to start otherwise) and is never logged.

Slow or stalled clients: a connection must send a whole request head within --header-timeout
seconds of opening (or of its previous response) and a body within --body-timeout seconds;
at --max-connections open connections (lowered to fit the open-file limit), a new one closes
the connection idle longest. Idle and half-sent connections cannot lock other clients out.

Signals: SIGTERM or Ctrl-C stop it after the requests in flight finish (up to --timeout seconds);
SIGHUP re-opens the space file (as POST /v1/reload does) without dropping requests.
"""


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def _serve(args: argparse.Namespace) -> int:
    from taskspace.errors import TaskspaceError
    from taskspace.service.limits import Limits
    from taskspace.service.run import serve

    if not os.path.isfile(args.space):
        raise CliError(
            f"{args.space}: no such space file (make one with taskspace.TaskSpace)", ExitCode.USAGE
        )
    limits = Limits(
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_batch=args.max_batch,
        max_text_chars=args.max_text_chars,
        max_k=args.max_k,
        timeout=args.timeout,
        search_threads=args.threads,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        how = serve(
            args.space,
            host=args.host,
            port=args.port,
            read_only=args.read_only,
            limits=limits,
            access_log=args.access_log,
        )
    except TaskspaceError as e:
        raise CliError(str(e), ExitCode.USAGE) from None
    except OSError as e:  # the port is taken, the address is not available
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e}", ExitCode.FAILED) from None
    if how == "SIGINT":
        raise CliError("interrupted; stopped cleanly (requests in flight finished)", ExitCode.INTERRUPTED)
    return int(ExitCode.OK)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a task space over HTTP: search, select, embed, metrics",
        description="Serve a TaskSpace file (named DTEs and MTEs of one surrogate) over HTTP with aiohttp: "
        "nearest tasks, model/prompt selection for a dataset, embeddings of new pairs, Prometheus metrics.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--space", required=True, metavar="FILE", help="the TaskSpace SQLite file to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    p.add_argument(
        "--read-only", action="store_true", help="refuse POST /v1/tasks and DELETE /v1/tasks/NAME (403)"
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=30.0,
        help="seconds per request, and for shutdown (default: 30)",
    )
    p.add_argument(
        "--max-body-mb", type=_positive(float), default=16.0, help="largest body in MiB (default: 16)"
    )
    p.add_argument(
        "--max-batch",
        type=_positive(int),
        default=10_000,
        help="most pairs/texts/candidates per request (default: 10000)",
    )
    p.add_argument(
        "--max-text-chars",
        type=_positive(int),
        default=20_000,
        help="longest text in characters (default: 20000)",
    )
    p.add_argument(
        "--max-k", type=_positive(int), default=1000, help="most results per search (default: 1000)"
    )
    p.add_argument(
        "--threads", type=_positive(int), default=None, help="search worker threads (default: one per core)"
    )
    p.add_argument(
        "--header-timeout",
        type=_positive(float),
        default=10.0,
        help="seconds to send a request head, and to stay idle between requests (default: 10)",
    )
    p.add_argument(
        "--body-timeout",
        type=_positive(float),
        default=20.0,
        help="seconds to send a request body (default: 20)",
    )
    p.add_argument(
        "--max-connections",
        type=_positive(int),
        default=1024,
        help="open connections at most; fitted to the open-file limit (default: 1024)",
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (client, method, path without query string, status, time)",
    )
    p.set_defaults(func=_serve)
