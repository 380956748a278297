"""Summaries across rounds, the Markdown table and the raw JSON file."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

SCENARIO_TITLES = {
    "plain": "(a) plain proxy, no auth",
    "jwt-same": "(b) RS256 JWT, one token repeated",
    "jwt-distinct": "(c) RS256 JWT, every request a different token",
    "jwt-forged": "(d) RS256 JWT, every request a different token with a forged signature "
                  "(each answered 401)",
}
BASELINE = "nginx"  # the nginx plain proxy: every ratio is against it
JWT_BASELINE = "haproxy-jwt"


def summarise(runs: list[dict]) -> dict[str, dict[str, dict]]:
    """{scenario: {target: {rps, p50_ms, p99_ms, rounds, errors, cpu, notes}}}, medians."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        grouped.setdefault((run["scenario"], run["target"]), []).append(run)
    out: dict[str, dict[str, dict]] = {}
    for (scenario, target), rs in grouped.items():
        results = [r["wrk"] for r in rs]
        requests = sum(w["requests"] for w in results)
        # a forged token's 401 is the right answer, not an error
        status_ok = scenario == "jwt-forged"
        errors = sum(w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"]
                     + (0 if status_ok else w["err_status"]) for w in results)
        cpus = [r["proxy_cpu_pct"] for r in rs if r.get("proxy_cpu_pct") is not None]
        counts: dict[str, int] = {}
        for r in rs:
            for n in r.get("notes", []):
                counts[n] = counts.get(n, 0) + 1
        notes = [n if len(rs) == 1 else f"{n} ({c} of {len(rs)} rounds)"
                 for n, c in sorted(counts.items())]
        out.setdefault(scenario, {})[target] = {
            "rps": statistics.median(w["rps"] for w in results),
            "rps_all": [round(w["rps"]) for w in results],
            "p50_ms": statistics.median(w["p50_us"] for w in results) / 1000,
            "p99_ms": statistics.median(w["p99_us"] for w in results) / 1000,
            "rounds": len(rs),
            "requests": requests,
            "errors": errors,
            "proxy_cpu_pct": statistics.median(cpus) if cpus else None,
            "notes": notes,
        }
    return out


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "n/a"


def markdown(summary: dict[str, dict[str, dict]], unavailable: dict[str, str]) -> str:
    base = summary.get("plain", {}).get(BASELINE)
    lines: list[str] = []
    for scenario, title in SCENARIO_TITLES.items():
        rows = summary.get(scenario)
        if not rows:
            continue
        jwt_base = rows.get(JWT_BASELINE)
        jwt = scenario != "plain"
        lines += [f"**{title}**", ""]
        head = ("| proxy | req/s (median) | rounds min-max | p50 ms | p99 ms | vs nginx req/s |"
                " vs nginx p99 |")
        rule = "|---|---:|---:|---:|---:|---:|---:|"
        if jwt:
            head += " vs haproxy-jwt req/s |"
            rule += "---:|"
        head += " proxy CPU | CPU µs/req | notes |"
        rule += "---:|---:|---|"
        lines += [head, rule]
        for target, row in rows.items():
            spread = f"{min(row['rps_all']):,}-{max(row['rps_all']):,}"
            cells = [target, f"{row['rps']:,.0f}", spread, f"{row['p50_ms']:.2f}",
                     f"{row['p99_ms']:.2f}",
                     _ratio(row["rps"], base["rps"] if base else None),
                     _ratio(row["p99_ms"], base["p99_ms"] if base else None)]
            if jwt:
                cells.append(_ratio(row["rps"], jwt_base["rps"] if jwt_base else None))
            cpu = row["proxy_cpu_pct"]
            cells.append(f"{cpu:.0f}%" if cpu is not None else "n/a")
            # steadier than req/s on a shared machine: the proxy's CPU time per request
            cells.append(f"{cpu / 100 * 1e6 / row['rps']:.1f}" if cpu is not None and row["rps"]
                         else "n/a")
            notes = list(row["notes"])
            if row["errors"]:
                notes.insert(0, f"{row['errors']:,} errors in {row['requests']:,} requests")
            cells.append("; ".join(notes))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for name, why in unavailable.items():
        lines.append(f"- {name}: not measured ({why})")
    return "\n".join(lines).rstrip() + "\n"


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
