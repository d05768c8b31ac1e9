"""A small Prometheus registry for ``taskspace serve``: request counts, latencies and errors.

The service updates it from its event loop only (one thread), so it needs no locks. ``render``
writes the Prometheus text exposition format (version 0.0.4) by hand; no client library is needed.

Example:
    >>> from taskspace.service.metrics import Metrics
    >>> m = Metrics()
    >>> m.observe("/v1/search", "POST", 200, 0.0031)
    >>> m.error("/v1/search", "invalid_request")
    >>> text = m.render()
    >>> 'taskspace_requests_total{endpoint="/v1/search",method="POST",status="200"} 1' in text
    True
    >>> 'taskspace_request_duration_seconds_bucket{endpoint="/v1/search",le="0.005"} 1' in text
    True
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Metrics"]

#: The media type Prometheus expects from a text-format scrape.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Upper bounds (seconds) of the latency histogram's buckets; ``+Inf`` is implied.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


def _number(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() else repr(float(x))


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; last is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        i = 0
        while i < len(LATENCY_BUCKETS) and seconds > LATENCY_BUCKETS[i]:
            i += 1
        self.counts[i] += 1
        self.sum += seconds


class Metrics:
    """Counters and a latency histogram per endpoint, and an in-flight gauge.

    ``info`` labels are exported as ``taskspace_info{...} 1``.
    """

    def __init__(self) -> None:
        self._requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._latency: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self._events: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.in_flight = 0
        self.info: dict[str, str] = {}

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request and record its latency."""
        self._requests[(endpoint, method, str(status))] += 1
        self._latency[endpoint].observe(seconds)

    def error(self, endpoint: str, code: str) -> None:
        """Count one error response by its stable error code."""
        self._errors[(endpoint, code)] += 1

    def event(self, name: str, result: str) -> None:
        """Count an event such as a reload (``name="reload"``, ``result="ok"``)."""
        self._events[(name, result)] += 1

    def render(self, gauges: Mapping[str, tuple[str, float]] | None = None) -> str:
        """Everything in the Prometheus text format, plus ``gauges`` (name -> (help text, value))."""
        out: list[str] = []

        def head(name: str, kind: str, text: str) -> None:
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")

        head("taskspace_requests_total", "counter", "HTTP requests handled, by endpoint, method and status.")
        for (endpoint, method, status), n in sorted(self._requests.items()):
            labels = _labels((("endpoint", endpoint), ("method", method), ("status", status)))
            out.append(f"taskspace_requests_total{labels} {n}")
        head("taskspace_errors_total", "counter", "Error responses, by endpoint and error code.")
        for (endpoint, code), n in sorted(self._errors.items()):
            out.append(f"taskspace_errors_total{_labels((('endpoint', endpoint), ('code', code)))} {n}")
        name = "taskspace_request_duration_seconds"
        head(name, "histogram", "Time from receiving a request to its response, by endpoint.")
        for endpoint, hist in sorted(self._latency.items()):
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), hist.counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f"{name}_bucket{_labels((('endpoint', endpoint), ('le', le)))} {cumulative}")
            labels = _labels((("endpoint", endpoint),))
            out.append(f"{name}_sum{labels} {hist.sum!r}")
            out.append(f"{name}_count{labels} {cumulative}")
        head("taskspace_events_total", "counter", "Service events (reloads), by event and result.")
        for (event, result), n in sorted(self._events.items()):
            out.append(f"taskspace_events_total{_labels((('event', event), ('result', result)))} {n}")
        head("taskspace_requests_in_flight", "gauge", "Requests being handled now.")
        out.append(f"taskspace_requests_in_flight {self.in_flight}")
        for gauge, (text, value) in sorted((gauges or {}).items()):
            head(gauge, "gauge", text)
            out.append(f"{gauge} {_number(value)}")
        if self.info:
            head("taskspace_info", "gauge", "The served space: surrogate fingerprint, mode and versions.")
            out.append(f"taskspace_info{_labels(sorted(self.info.items()))} 1")
        return "\n".join(out) + "\n"
