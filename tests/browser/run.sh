#!/usr/bin/env bash
# The browser tool in headless Chromium: a copy of the sample project, `kubus demo`, three users of different roles
# with tokens, `kubus serve` on a free port, then tests/browser/explorer.mjs (playwright-core drives Debian's
# chromium, axe-core checks accessibility). Screenshots land in target/browser/.
# Usage: tests/browser/run.sh [KUBUS]   (default target/debug/kubus; needs node, npm and chromium)
set -euo pipefail
cd "$(dirname "$0")/../.."
kubus=$(realpath "${1:-target/debug/kubus}")
[ -d tests/browser/node_modules/d3 ] || npm ci --prefix tests/browser --no-audit --no-fund --silent
# The copy of d3 compiled into the server is the one npm publishes at the version package-lock.json pins.
cmp crates/kubus-server/ui/vendor/d3.min.js tests/browser/node_modules/d3/dist/d3.min.js
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
cp -r kubus.toml cube-schemas sample-data ptables geo "$work/"
# A source whose files lack their year, given at the upload (`@set`): the Köln table, its `jahr` column unread.
sed -e 's/^name = "koeln_bevoelkerung"/name = "koeln_jahr"/' -e 's/^member = "jahr"/member = "@set"/' \
  -e 's/^description = .*/description = "Stadt Köln: Bevölkerung nach Stadtteilen, ein Jahr je Datei, ohne Jahresspalte"/' \
  -e 's/^drop = \["id", /drop = ["id", "jahr", /' cube-schemas/sources/koeln_bevoelkerung.toml \
  >"$work/cube-schemas/sources/koeln_jahr.toml"
grep -q '^member = "@set"' "$work/cube-schemas/sources/koeln_jahr.toml"
sed -i 's/"koeln_bevoelkerung"\]$/"koeln_bevoelkerung", "koeln_jahr"]/' "$work/kubus.toml"
grep -q '"koeln_jahr"\]$' "$work/kubus.toml"
"$kubus" -C "$work" demo >/dev/null
token() { "$kubus" -C "$work" user add "$1" --group "$2" >/dev/null; echo "$1:$("$kubus" -C "$work" token create "$1" 2>/dev/null)"; }
STAT=$(token statistik1 statistikstelle)
YOUTH=$(token jugend1 jugendamt)
ANALYST=$(token abh1 auslaenderbehoerde)
export STAT YOUTH ANALYST
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$kubus" -C "$work" serve --demo-key --listen "127.0.0.1:$port" >"$work/serve.out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
node tests/browser/explorer.mjs "http://127.0.0.1:$port"
