"""The server-side figures of ``bench/bench_serving.py --overload``: quantiles from two scrapes of /metrics."""

from __future__ import annotations

import math

from bench.bench_serving import histogram_quantile, server_figures


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.01, 0.0), (0.02, 50.0), (0.04, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(buckets, 0.5) == 0.02
    assert math.isclose(histogram_quantile(buckets, 0.75), 0.03)
    assert histogram_quantile([(0.01, 0.0), (math.inf, 10.0)], 0.99) == 0.01  # beyond the last bound: that bound
    assert math.isnan(histogram_quantile([(0.01, 0.0), (math.inf, 0.0)], 0.5))


def test_server_figures_use_the_deltas_and_keep_accepted_and_shed_apart() -> None:
    def scrape(acc: list[float], shed: list[float], reasons: dict[str, float]) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for outcome, counts in (("accepted", acc), ("shed", shed)):
            for worker in ("0", "1"):  # summed over any other label
                for le, c in zip(("0.001", "0.01", "1.0", "+Inf"), counts, strict=True):
                    key = ("crmscore_scoring_latency_seconds_bucket", "endpoint=/score_leads", f"le={le}",
                           f"outcome={outcome}", f"w={worker}")
                    out[key] = c / 2
        for reason, v in reasons.items():
            out[("crmscore_requests_shed_total", "endpoint=/score_leads", f"reason={reason}")] = v
        return out

    before = scrape([0, 100, 100, 100], [0, 0, 0, 0], {"queue full": 5})
    after = scrape([0, 100, 200, 200], [0, 40, 40, 40], {"queue full": 45})
    f = server_figures(before, after, "/score_leads")
    assert f["server_accepted"] == 100 and f["server_shed"] == 40
    assert 10 < f["server_accepted_p50_ms"] < 1000  # the 100 new ones are all in (10 ms, 1 s]
    assert 1 < f["server_shed_p99_ms"] <= 10
    assert f["shed_by_reason"] == {"queue full": 40}
    assert math.isnan(f["server_admission_lag_p99_ms"])
