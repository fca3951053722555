#!/usr/bin/env bash
# The whole test suite from a fresh clone: set-up, build, then every tap test.
# Prints one line per test file as it finishes, the full output of any failure, and a closing
# "N passed, N failed" line. The raw TAP stream is kept in .tap/all.tap.
# Three test files run at a time (package.json "tap".jobs): the files wait on timers, sockets and
# child processes more than they compute (a whole run took about 1,500 CPU-seconds in 1,344 s on
# two cores with two at a time), so a third keeps both cores busy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh

mkdir -p .tap
log=.tap/all.tap
files=$(npx tap list 2>/dev/null | wc -l)
if [ "$files" -eq 0 ]; then
  echo "test: no test files found" >&2
  exit 1
fi
echo "test: running $files test files"
start=$(date +%s)
set +e
npx tap --reporter=tap "$@" 2>&1 | tee "$log" | grep --line-buffered -E '^(not )?ok [0-9]+ '
rc=${PIPESTATUS[0]}
set -e
if grep -qE '^\s*not ok ' "$log"; then
  echo
  echo "test: failures (full output in $log):"
  # Each failing top-level file, with its whole TAP block.
  awk '/^# Subtest: /{buf=""; keep=1} keep{buf=buf $0 "\n"} /^(not )?ok [0-9]+ /{ if ($1=="not") printf "%s", buf; keep=0 }' "$log" | tail -n 400
fi
summary=$(grep -E '^# \{ total: ' "$log" | tail -n 1)
total=$(sed -E 's/.*total: ([0-9]+).*/\1/' <<<"$summary")
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(( ${total:-0} - ${pass:-0} ))
echo "test: $(( $(date +%s) - start ))s for $files files ($summary)"
echo "${pass:-0} passed, ${fail} failed"
if [ "${total:-0}" -eq 0 ]; then
  echo "test: no test ran" >&2
  exit 1
fi
exit "$rc"
