"""``taskspace serve-models``: local prompt-driven models over an OpenAI-compatible API."""

from __future__ import annotations

import argparse
import sys
from typing import Any

_SERVE_MODELS_EXAMPLE = """\
example config (models.toml):
  [models.review-zero-shot]
  kind = "zero-shot"
  template = "This review is {}."
  label_descriptions = { positive = ["good", "great, I loved it"], negative = "bad, I hated it" }

  [models.review-few-shot]
  kind = "in-context"
  k = 3
  demonstrations = [
    { text = "I loved every minute of it", label = "positive" },
    { text = "a waste of money", label = "negative" },
  ]
  # or: demonstrations_file = "demos.jsonl"   ({"text": ..., "label": ...} per line)

example:
  taskspace serve-models models.toml --port 8000
  curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "review-zero-shot", "messages": [{"role": "user", "content": "great phone"}], "logprobs": true}'

The server has no authentication, so it listens on the loopback interface only: anyone who can
reach the port could query the models (and read back what their prompts encode) or load the
machine. --allow-remote lifts that restriction for a trusted network.
"""


def _serve_models(args: argparse.Namespace) -> int:
    from taskspace.errors import TaskspaceError
    from taskspace.models.config import load_models
    from taskspace.models.server import is_loopback, serve_models

    if not is_loopback(args.host) and not args.allow_remote:
        print(
            f"taskspace serve-models: refusing to listen on {args.host!r}: the server has no authentication, "
            "so anyone who can reach it could query the models; use 127.0.0.1 or pass --allow-remote",
            file=sys.stderr,
        )
        return 2
    try:
        models = load_models(args.config)
    except (OSError, TaskspaceError) as e:
        print(f"taskspace serve-models: {e}", file=sys.stderr)
        return 2
    try:
        serve_models(models, host=args.host, port=args.port, allow_remote=args.allow_remote)
    except TaskspaceError as e:
        print(f"taskspace serve-models: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # port in use, address not available
        print(f"taskspace serve-models: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    serve = sub.add_parser(
        "serve-models",
        help="serve local prompt-driven models over an OpenAI-compatible HTTP API (offline)",
        description="Serve the local models (zero-shot and in-context) that a TOML config defines, as an "
        "OpenAI-compatible server (/v1/models, /v1/chat/completions, /v1/completions, with logprobs for "
        "the label tokens), so the HTTP probe path runs offline. Ctrl-C stops it.",
        epilog=_SERVE_MODELS_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("config", metavar="CONFIG", help="TOML file with [models.NAME] tables")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the server has no authentication)",
    )
    serve.set_defaults(func=_serve_models)
