#!/bin/sh
# The figures of README.md's performance table, in one run: the machine, the
# date and each command are printed above what it measured. Run it on a
# machine doing nothing else; the "cost of nothing" rows (two servers
# configured alike) are that run's noise floor.
#
#   bench/report.sh [ROUNDS] [SECONDS]      (default 5 rounds of 5 s)
#
# Build first (./configure && make); it builds bench/bench_api itself.
set -eu
rounds=${1:-5}
seconds=${2:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${DC_BUILD_DIR:-$top}

run() {
  echo
  echo "\$ $*"
  "$@"
}

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
make -s -C "$build" bench/bench_api bench/bench_engine >/dev/null

# the request path's events in process: per second of the request thread's CPU. One thread
# here makes ten times a server's request rate, which fills the default 4 MiB ring faster than
# its background thread writes it out (half of the records would take the segment path): the
# ring is given room in proportion (64 MiB), and bench_api prints how many did not fit.
run "$build/bench/bench_api" "$top/conf/sample-bucketing.json" 100000 "$rounds" memory events \
  ring-bytes=64M
for mode in map pwrite; do
  run "$build/bench/bench_api" "$top/conf/sample-bucketing.json" 100000 "$rounds" memory events \
    write=$mode
done
# the server: each configuration the issue names, events and p99 side by side
for config in "" "--keepalive-on-worker" "--mpm worker"; do
  # shellcheck disable=SC2086
  run /usr/bin/python3 "$top/bench/httpd_vs_static.py" --rounds "$rounds" --duration "$seconds" \
    $config
done
if [ -f "$top/bench/scale.py" ]; then
  run /usr/bin/python3 "$top/bench/scale.py"
fi
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
