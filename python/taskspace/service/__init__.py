"""``taskspace serve``: a TaskSpace behind an HTTP API (aiohttp), with Prometheus metrics.

* :mod:`taskspace.service.app` — the routes, limits, auth and the serving loop;
* :mod:`taskspace.service.metrics` — the counters and histograms it exports.
"""
