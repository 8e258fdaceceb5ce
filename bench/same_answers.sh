#!/bin/sh
# Whether two builds of decision-fcgi answer byte for byte the same: the check
# behind "answers are the same" in doc/performance.md, for a change to the
# engine that must not change a decision.
#
#   bench/same_answers.sh OLD NEW [VISITORS]     (OLD, NEW: decision-fcgi programs)
#
# Generates bucketing files with tests/gen_bucketing.py (two 1,000-campaign and
# one 200-campaign file of the scale profile, six of the SDK differential
# test's), each also with 1V1T and XPC on, and feeds each the generator's
# VISITORS visitors (default 1500) through `decision-fcgi eval --mode full`,
# without a store and with one (memory: visitors come back, so assignments
# count), on /v2/campaigns and /v2/flags. Prints one line per difference and a
# count; exits 1 if any answer differs. SAME_ANSWERS_CASES="diff:1:0 ..."
# (profile:seed:campaigns, 0 for the generator's choice) picks other files.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 OLD NEW [VISITORS]" >&2; exit 2; }
old=$1
new=$2
visitors=${3:-1500}
top=$(cd "$(dirname "$0")/.." && pwd)
cases=${SAME_ANSWERS_CASES:-"scale:1:1000 scale:2:1000 scale:3:200 diff:1:0 diff:2:0 diff:3:0 diff:4:0 diff:5:0 diff:6:0"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

compared=0
different=0
for c in $cases; do
  profile=${c%%:*}
  rest=${c#*:}
  seed=${rest%%:*}
  campaigns=${rest#*:}
  dir="$work/$profile-$seed"
  /usr/bin/python3 - "$top/tests" "$dir" "$seed" "$visitors" "$campaigns" "$profile" <<'EOF'
import json, os, sys
sys.path.insert(0, sys.argv[1])
import gen_bucketing
out, seed, visitors, campaigns, profile = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
path, _ = gen_bucketing.write_case(out, seed, visitors, campaigns or None, profile=profile)
with open(path) as f:
    doc = json.load(f)
doc["accountSettings"] = {"enabledXPC": True, "enabled1V1T": True}
with open(os.path.join(out, "xpc.json"), "w") as f:
    json.dump(doc, f)
EOF
  for file in bucketing xpc; do
    for store in none memory; do
      for path in /v2/campaigns /v2/flags; do
        a=$("$old" eval --bucketing "$dir/$file.json" --mode full --store "$store" --path "$path" \
          <"$dir/visitors.jsonl" | cksum)
        b=$("$new" eval --bucketing "$dir/$file.json" --mode full --store "$store" --path "$path" \
          <"$dir/visitors.jsonl" | cksum)
        compared=$((compared + 1))
        if [ "$a" != "$b" ]; then
          different=$((different + 1))
          echo "different: $profile seed $seed ($file.json), store $store, $path"
        fi
      done
    done
  done
done
echo "$compared compared, $different different"
[ "$different" = 0 ]
