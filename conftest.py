"""Repository-level pytest configuration."""

import importlib.util

# taskspace.distributed raises ImportError on purpose without Ray (the `ray` extra); its doctests
# are collected only where Ray is installed (the `test` extra installs it).
collect_ignore_glob = [] if importlib.util.find_spec("ray") else ["python/taskspace/distributed/*"]
