#!/usr/bin/env bash
# Check and test the edge functions with the project's pinned Deno (installed by
# `scripts/bootstrap.sh --deno`): formatting, lint, type check and `deno test`.
set -euo pipefail
cd "$(dirname "$0")/.."
DENO="$PWD/.tools/node_modules/.bin/deno"
cd supabase/functions
"$DENO" fmt --check
"$DENO" lint
"$DENO" check */index.ts
"$DENO" test --allow-env --allow-net
