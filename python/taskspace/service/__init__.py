"""``taskspace serve``: a TaskSpace behind an HTTP API (aiohttp), with Prometheus metrics.

* :mod:`taskspace.service.limits` — :class:`~taskspace.service.limits.Limits`, what it accepts;
* :mod:`taskspace.service.requests` — request bodies read into typed values, and the JSON errors;
* :mod:`taskspace.service.app` — the application: routes, auth, worker pools, middleware;
* :mod:`taskspace.service.run` — listening, signals (SIGHUP reloads), graceful shutdown;
* :mod:`taskspace.service.metrics` — the counters and histograms it exports.
"""
