#!/usr/bin/env bash
# The main job from a fresh clone: set-up, build, then the demonstration run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh
node dist/node/cli.js demo "$@"
