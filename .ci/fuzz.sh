#!/usr/bin/env bash
# Runs every fuzz target of the module for a fixed number of inputs each (FUZZTIME, default
# 10000x), so the targets keep compiling and a regression their seed corpora or a short run can
# find fails CI. The default is a count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report "context deadline exceeded" as a failure at the deadline with no failing
# input (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
# Long runs (docs/benchmarks.md) are done by hand: FUZZTIME=10m .ci/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10000x}"
n=0
while IFS= read -r dir; do
  pkg="./$dir"
  for name in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' | sort -u); do
    echo "fuzz: $pkg $name ($fuzztime)"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/iosmux-fuzz.log 2>&1 || {
      cat /tmp/iosmux-fuzz.log
      echo "fuzz: $pkg $name FAILED"
      exit 1
    }
    n=$((n + 1))
  done
done < <(grep -l '^func Fuzz' $(git ls-files '*_test.go') | xargs -n1 dirname | sort -u)
echo "fuzz: $n targets ran for $fuzztime each, 0 failures"
