#!/usr/bin/env bash
# The whole test suite from a fresh clone: set-up, build, then every tap test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh
npx tap
