#!/usr/bin/env bash
# The restore drill: prove that last night's backup can be restored and that the ledger in it
# is whole. Dumps DATABASE_URL with pg_dump (custom format, as the nightly backup does), or
# takes an existing dump with --dump FILE, restores it into a fresh scratch database with
# pg_restore, runs `skillswap ledger check` against the copy, and drops the copy again.
# Exits 0 only when the restore succeeded and every ledger invariant holds in it.
#
#   DATABASE_URL=postgresql://user:pass@host:5432/skillswap deploy/restore-drill.sh
#   DATABASE_URL=... deploy/restore-drill.sh --dump /backups/skillswap-2024-05-01.dump
#
# The scratch database is created next to DATABASE_URL's (same server and credentials, which
# need CREATEDB); SKILLSWAP runs the CLI (default: python3 -m skillswap).
set -euo pipefail

dump=""
if [[ "${1:-}" == "--dump" ]]; then
  dump="${2:?--dump needs a file}"
fi
source_url="${DATABASE_URL:?set DATABASE_URL to the database to dump (or to one on the server to restore on)}"
source_url="${source_url/#postgres:\/\//postgresql://}"
source_url="${source_url/#postgresql+asyncpg:\/\//postgresql://}"
skillswap="${SKILLSWAP:-python3 -m skillswap}"
scratch="restore_drill_$(date +%Y%m%d%H%M%S)_$$"
server_url="${source_url%/*}"
scratch_url="${server_url}/${scratch}"
workdir="$(mktemp -d)"

cleanup() {
  dropdb --if-exists --force --maintenance-db="$source_url" "$scratch" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

started=$SECONDS
if [[ -z "$dump" ]]; then
  dump="$workdir/skillswap.dump"
  echo "restore drill: pg_dump -Fc of the database"
  pg_dump --format=custom --no-owner --no-privileges --dbname="$source_url" --file="$dump"
fi
echo "restore drill: restoring $(du -h "$dump" | cut -f1) into $scratch"
createdb --maintenance-db="$source_url" "$scratch"
pg_restore --exit-on-error --no-owner --no-privileges --jobs=2 --dbname="$scratch_url" "$dump"
echo "restore drill: skillswap ledger check on the copy"
DATABASE_URL="$scratch_url" REDIS_URL="" $skillswap ledger check
echo "restore drill: ok in $((SECONDS - started)) s"
