#!/usr/bin/env bash
# Check and test the edge functions with the project's pinned Deno (installed by
# `scripts/bootstrap.sh --deno`): formatting, lint, type check and `deno test`. The
# integration tests need a database and are reported as ignored here; `pysync functions test`
# (and tests/test_edge_functions.py under pytest) runs them against a throw-away one.
set -euo pipefail
cd "$(dirname "$0")/.."
DENO="$PWD/.tools/node_modules/.bin/deno"
cd supabase/functions
"$DENO" fmt --check
"$DENO" lint
"$DENO" check */index.ts _dev/serve.ts
"$DENO" test --allow-env --allow-net --allow-read --allow-write
