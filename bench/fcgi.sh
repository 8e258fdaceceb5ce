#!/bin/sh
# bench/fcgi.sh — decision-fcgi's FastCGI throughput against a hello-world responder.
#
#   make bench-fcgi            (or: bench/fcgi.sh [SECONDS])
#
# One lighttpd on 127.0.0.1 spawns both responders (bin-path, one process each, the same
# THREADS): /v2 → decision-fcgi deciding POST /v2/campaigns on conf/sample-bucketing.json,
# /hello → bench/hello-fcgi, which reads the body and answers a fixed JSON. wrk runs
# against each in turn, ROUNDS times, and the best rate of each is compared: the ratio is
# what deciding costs on top of FastCGI itself (target: >= 0.90); the median of the
# rounds' own ratios is printed too, steadier on a shared machine. Not run in CI: the
# figures depend on the machine. Environment: THREADS (default 4), CONNECTIONS (32),
# WRK_THREADS (2), ROUNDS (2), DC_BUILD_DIR (where the programs were built).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${DC_BUILD_DIR:-$top}
seconds=${1:-10}
threads=${THREADS:-4}
connections=${CONNECTIONS:-32}
wrk_threads=${WRK_THREADS:-2}
rounds=${ROUNDS:-2}
decision="$build/fcgi/decision-fcgi"
hello="$build/bench/hello-fcgi"

for tool in wrk lighttpd python3; do
  command -v $tool >/dev/null 2>&1 || { echo "bench/fcgi.sh: $tool is needed (apt-get install $tool)" >&2; exit 2; }
done
for prog in "$decision" "$hello"; do
  [ -x "$prog" ] || { echo "bench/fcgi.sh: $prog is not built (make bench-fcgi builds it)" >&2; exit 2; }
done

dir=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$dir/htdocs"
cat >"$dir/lighttpd.conf" <<CONF
server.document-root = "$dir/htdocs"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$dir/error.log"
server.modules += ("mod_fastcgi")
fastcgi.server = (
  "/v2" => (( "socket" => "$dir/decision.sock", "bin-path" => "$decision", "max-procs" => 1,
              "check-local" => "disable",
              "bin-environment" => ( "THREADS" => "$threads", "ENV_ID" => "bench",
                                     "BUCKETING_FILE" => "$top/conf/sample-bucketing.json",
                                     "LOG_LEVEL" => "error" ) )),
  "/hello" => (( "socket" => "$dir/hello.sock", "bin-path" => "$hello", "max-procs" => 1,
                 "check-local" => "disable", "bin-environment" => ( "THREADS" => "$threads" ) ))
)
CONF
lighttpd -D -f "$dir/lighttpd.conf" >"$dir/lighttpd.log" 2>&1 &
pid=$!
body='{"visitor_id":"bench-visitor-42","context":{"isVIP":true},"trigger_hit":false}'
i=0
until curl -sf -o /dev/null -XPOST -d "$body" "http://127.0.0.1:$port/v2/campaigns" &&
      curl -sf -o /dev/null -XPOST -d "$body" "http://127.0.0.1:$port/hello"; do
  i=$((i + 1))
  [ $i -lt 100 ] || { echo "bench/fcgi.sh: lighttpd did not come up:" >&2; cat "$dir/lighttpd.log" "$dir/error.log" >&2; exit 1; }
  sleep 0.1
done

# The responders' PIDs (lighttpd's children), to read their CPU time around each run.
child_of() { # program path → pid
  for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    [ "$(readlink /proc/"$c"/exe 2>/dev/null)" = "$(readlink -f "$1")" ] && { echo "$c"; return; }
  done
}
cpu_ticks() { # pid → utime + stime in clock ticks
  awk '{ print $14 + $15 }' /proc/"$1"/stat
}
rate() { # URL PID → "requests/s CPU-microseconds-per-request"
  before=$(cpu_ticks "$2")
  out=$(wrk -t"$wrk_threads" -c"$connections" -d"${seconds}s" -s "$top/bench/post-campaigns.lua" "$1")
  after=$(cpu_ticks "$2")
  echo "$out" | awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ { n = $1 } /^Requests\/sec:/ { r = $2 }
    END { printf "%s %.1f\n", r, n ? t / hz * 1e6 / n : 0 }'
}
decision_pid=$(child_of "$decision")
hello_pid=$(child_of "$hello")
[ -n "$decision_pid" ] && [ -n "$hello_pid" ] || { echo "bench/fcgi.sh: responders not found under lighttpd" >&2; exit 1; }
best_hello=0
best_decision=0
cpu_hello=
cpu_decision=
ratios=
echo "lighttpd → FastCGI, $threads responder threads, wrk -t$wrk_threads -c$connections, ${seconds}s x $rounds rounds"
wrk -t1 -c4 -d1s -s "$top/bench/post-campaigns.lua" "http://127.0.0.1:$port/hello" >/dev/null
wrk -t1 -c4 -d1s -s "$top/bench/post-campaigns.lua" "http://127.0.0.1:$port/v2/campaigns" >/dev/null
r=0
while [ $r -lt "$rounds" ]; do
  set -- $(rate "http://127.0.0.1:$port/hello" "$hello_pid")
  h=$1 hc=$2
  set -- $(rate "http://127.0.0.1:$port/v2/campaigns" "$decision_pid")
  d=$1 dc=$2
  echo "  round $((r + 1)): hello-fcgi $h req/s ($hc us CPU/request), decision-fcgi POST /v2/campaigns $d req/s ($dc us CPU/request)"
  cpu_hello="$cpu_hello $hc"
  ratios="$ratios $(python3 -c "print('%.3f' % ($d / $h if $h else 0))")"
  cpu_decision="$cpu_decision $dc"
  best_hello=$(python3 -c "print(max($best_hello, $h))")
  best_decision=$(python3 -c "print(max($best_decision, $d))")
  r=$((r + 1))
done
python3 -c "
h, d = $best_hello, $best_decision
ch, cd = min(float(x) for x in '$cpu_hello'.split()), min(float(x) for x in '$cpu_decision'.split())
print('best: hello-fcgi %.0f req/s, decision-fcgi %.0f req/s, ratio %.2f (target >= 0.90)' % (h, d, d / h))
r = sorted(float(x) for x in '$ratios'.split())
print('ratio of each round (decision after hello):', ' '.join('%.2f' % x for x in r),
      '- median %.2f' % (r[len(r) // 2] if len(r) % 2 else (r[len(r) // 2 - 1] + r[len(r) // 2]) / 2))
print('responder CPU per request (least of the rounds): hello-fcgi %.1f us, decision-fcgi %.1f us '
      '(+%.1f us: the decision and its answer)' % (ch, cd, cd - ch))"
