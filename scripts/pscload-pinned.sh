#!/bin/bash
# Issue 12's open-loop run on one machine (docs/pscload.md, docs/benchmarks.md
# "Open-loop produce"): a fresh redis-server and sidecar pinned to CPU 1,
# pscload pinned to CPU 0, so the generator does not take the sidecar's core.
#
#   scripts/pscload-pinned.sh <out-dir> <pscload flags...>
#   scripts/pscload-pinned.sh /tmp/cap  --keys 1 --steps 500:10s,1000:10s,1500:10s,2000:10s
#   scripts/pscload-pinned.sh /tmp/step --keys 1 --capacity 1500 --steps 10%:30s,80%:30s
#
# Needs redis-server, taskset and curl; builds the sidecar and pscload into
# <out-dir>. Writes summary.txt, report.json, plot.png and the load average
# before and after, and removes the sidecar's data directory at the end
# (KEEP_DATA=1 keeps it). SIDECAR_CPU and LOAD_CPU choose other cores; PORT and
# REDIS_PORT other ports. LOAD_RT=1 runs pscload at real-time priority
# (chrt -f 1; root or CAP_SYS_NICE) so that other processes on its core do
# not delay the schedule on a shared machine. pscload always runs with
# GOMAXPROCS=1 (its one core): at real-time priority, a second P on the same
# core spun against the first and the run never ended. Other variables (for
# example GOMAXPROCS, GOGC or PSC_*) reach the sidecar.
set -eu
out=$1
shift
sidecar_cpu=${SIDECAR_CPU:-1}
load_cpu=${LOAD_CPU:-0}
port=${PORT:-8188}
redis_port=${REDIS_PORT:-6391}
root=$(cd "$(dirname "$0")/.." && pwd)

mkdir -p "$out"
(cd "$root" && go build -o "$out/pulsar-sidecar" ./cmd/pulsar-sidecar && go build -o "$out/pscload" ./cmd/pscload)
rm -rf "$out/data"

taskset -c "$sidecar_cpu" redis-server --port "$redis_port" --save '' --appendonly no --daemonize yes \
	--pidfile "$out/redis.pid" --logfile "$out/redis.log"
taskset -c "$sidecar_cpu" "$out/pulsar-sidecar" --listen "127.0.0.1:$port" --redis-addr "127.0.0.1:$redis_port" \
	--data-dir "$out/data" >"$out/sidecar.log" 2>&1 &
sidecar=$!
cleanup() {
	kill "$sidecar" 2>/dev/null || true
	wait "$sidecar" 2>/dev/null || true
	redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
	# A run writes about 0.4 GB of data; on tmpfs (/dev/shm) that is RAM
	# until removed, and a few dozen runs filled this machine's memory and
	# slowed the runs after. KEEP_DATA=1 keeps it for inspection.
	if [ "${KEEP_DATA:-0}" != 1 ]; then
		rm -rf "$out/data"
	fi
}
trap cleanup EXIT
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
	sleep 0.1
done

uptime >"$out/load-before"
status=0
rt=()
if [ "${LOAD_RT:-0}" = 1 ]; then
	rt=(chrt -f 1)
fi
"${rt[@]}" env GOMAXPROCS=1 taskset -c "$load_cpu" "$out/pscload" --target "http://127.0.0.1:$port" "$@" \
	--json "$out/report.json" --plot "$out/plot.png" >"$out/summary.txt" 2>&1 || status=$?
uptime >"$out/load-after"
cat "$out/load-before" "$out/summary.txt" "$out/load-after"
exit "$status"
