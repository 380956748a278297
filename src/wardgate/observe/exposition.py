"""Prometheus text exposition (0.0.4) and OpenMetrics 1.0, formatted only at scrape time."""

from __future__ import annotations

from collections.abc import Callable

from wardgate.observe.aggregate import Aggregate

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if v == float("inf"):
        return "+Inf"
    return repr(float(v)) if isinstance(v, float) else str(v)


def render(agg: Aggregate, openmetrics: bool = False,
           extra_lines: Callable[[bool], list[str]] | None = None) -> str:
    out: list[str] = []
    for name in sorted(agg.families):
        fam = agg.families[name]
        series = agg.values.get(name, {})
        base = name[:-6] if openmetrics and fam.kind == "counter" and name.endswith("_total") \
            else name
        out.append(f"# HELP {base} {_escape(fam.help)}")
        out.append(f"# TYPE {base} {fam.kind}")
        for key in sorted(series):
            vals = series[key]
            if fam.kind != "histogram":
                out.append(f"{name}{_labels(fam.labels, key)} {vals[0]}")
                continue
            nb = len(fam.bounds)
            cum = 0
            for i, bound in enumerate((*fam.bounds, float("inf"))):
                cum += vals[i]
                le = 'le="' + _num(bound) + '"'
                out.append(f"{name}_bucket{_labels(fam.labels, key, le)} {cum}")
            lab = _labels(fam.labels, key)
            out.append(f"{name}_sum{lab} {_num(vals[nb + 1] / 1e9)}")
            out.append(f"{name}_count{lab} {cum}")
    if extra_lines is not None:
        out.extend(extra_lines(openmetrics))
    if openmetrics:
        out.append("# EOF")
    return "\n".join(out) + "\n"
