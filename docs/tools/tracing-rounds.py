#!/usr/bin/env python3
"""Summarise BenchmarkProduceTracing output round by round.

Usage: tracing-rounds.py OUT [OUT...]

Each OUT is the output of one benchmark process, e.g.

    go test ./app -run '^$' -bench 'ProduceTracing/^(off|off2|sqlite)$/' -benchtime 5s > OUT

A round is every variant's sub-benchmark with the same suffix (conc=32,
conc=32#01, ...) in one process; warm-up rounds are left out. Ratios divide
each traced variant's req/s by the mean of the tracing-off apps (off, off2)
of the same round; "A/A" is off2/off. CPU per request is the sidecar
process's (cpu-us/op minus the child broker's). The median's 95% interval
comes from a bootstrap over rounds (10,000 resamples, fixed seed).
"""
import random
import re
import statistics as st
import sys

OFF = ("off", "off2")


def rounds(paths):
    out = []
    for path in paths:
        cur = {}
        for line in open(path):
            if not line.startswith("Benchmark"):
                continue
            f = line.split()
            m = re.match(r"BenchmarkProduceTracing/([^/]+)/(\S+?)(-\d+)?$", f[0])
            if not m or m.group(2) == "warmup" or len(f) < 4:  # len: a result still running
                continue
            vals = {f[i + 1]: float(f[i]) for i in range(2, len(f) - 1, 2)}
            cur.setdefault(m.group(2), {})[m.group(1)] = vals
        for suffix in sorted(cur, key=lambda s: int(s.split("#")[1]) if "#" in s else 0):
            out.append(cur[suffix])
    return out


def median_ci(xs, n=10000):
    rng = random.Random(1)
    meds = sorted(st.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return st.median(xs), meds[int(0.025 * n)], meds[int(0.975 * n)]


def main():
    rs = [r for r in rounds(sys.argv[1:]) if all(v in r for v in OFF)]
    if not rs:
        sys.exit("no complete rounds (each needs off and off2)")
    traced = sorted({v for r in rs for v in r} - set(OFF))
    cpu = lambda v: v["cpu-us/op"] - v.get("broker-cpu-us/op", 0)
    aa = [r["off2"]["req/s"] / r["off"]["req/s"] for r in rs]
    print(f"{len(rs)} rounds")
    med, lo, hi = median_ci(aa)
    print(f"A/A off2/off: median {med:.3f}x (95% {lo:.3f}-{hi:.3f}), range {min(aa):.3f}-{max(aa):.3f}")
    for v in traced:
        sub = [r for r in rs if v in r]
        ratio = [r[v]["req/s"] / st.mean(r[o]["req/s"] for o in OFF) for r in sub]
        dcpu = [cpu(r[v]) - st.mean(cpu(r[o]) for o in OFF) for r in sub]
        med, lo, hi = median_ci(ratio)
        line = (f"{v}: on/mean-off median {med:.3f}x (95% {lo:.3f}-{hi:.3f}), range {min(ratio):.3f}-{max(ratio):.3f}, "
                f">=0.95x in {sum(x >= 0.95 for x in ratio)} of {len(ratio)}; tracer CPU {st.median(dcpu):.1f} us/request")
        for k, name in (("ingest-cpu-%", "store CPU"), ("deferred-%", "deferred"), ("catchup-s", "catch-up s")):
            xs = [r[v][k] for r in sub if k in r[v]]
            if xs:
                line += f"; {name} {st.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"
        print(line)
    print()
    cols = list(OFF) + traced
    print("| round | " + " | ".join(f"{c} req/s" for c in cols) + " | A/A | "
          + " | ".join(f"{v}/mean-off" for v in traced) + " | sidecar cpu-us/op " + " / ".join(cols) + " |")
    print("|---" + "|---:" * (2 + len(cols) + len(traced)) + "|")
    for i, r in enumerate(rs, 1):
        m = st.mean(r[o]["req/s"] for o in OFF)
        print(f"| {i} | " + " | ".join(f"{r[c]['req/s']:.0f}" if c in r else "-" for c in cols)
              + f" | {r['off2']['req/s'] / r['off']['req/s']:.3f}x | "
              + " | ".join(f"{r[v]['req/s'] / m:.3f}x" if v in r else "-" for v in traced)
              + " | " + " / ".join(f"{cpu(r[c]):.1f}" if c in r else "-" for c in cols) + " |")


if __name__ == "__main__":
    main()
