#!/usr/bin/env bash
# The package as users get it: `npm pack` builds a tarball from a clean copy of the sources,
# it installs globally into a temporary prefix (npm fetches the dependencies, as `npm ci` does),
# and the installed `wacamp` runs from an unrelated folder with a bare environment:
# --version, --help, the sandbox answering one real POST, and the demo on the embedded
# PostgreSQL. Run by .ci/run; takes about half a minute.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/wacamp-package-XXXXXX")"
# As root the embedded server runs as the `postgres` user, which must reach WACAMP_HOME.
chmod 755 "$work"
prefix="$work/prefix"
home="$work/home"
elsewhere="$work/elsewhere"
mkdir -p "$elsewhere"
sandbox_pid=""

say() { printf -- '--- package: %s\n' "$*"; }
fail() { printf 'package check FAILED: %s\n' "$*" >&2; exit 1; }

# The installed command, from another folder, with nothing of this shell's settings.
wacamp() {
  (cd "$elsewhere" && env -i PATH="$prefix/bin:$PATH" HOME="$work" NO_COLOR=1 \
    WACAMP_HOME="$home" wacamp "$@")
}

cleanup() {
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    kill "$sandbox_pid" 2>/dev/null || true
  fi
  if [ -x "$prefix/bin/wacamp" ]; then wacamp db stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say "packing from a clean copy (stale files in dist/ must never ship)"
stage="$work/stage"
mkdir -p "$stage"
cp -R "$root/package.json" "$root/package-lock.json" "$root/tsconfig.json" \
  "$root/bin" "$root/src" "$root/sql" "$stage/"
cp "$root"/README*.md "$stage/" 2>/dev/null || true
ln -s "$root/node_modules" "$stage/node_modules"
# `prepare` compiles src/ into the copy's own dist/ before the files are collected.
(cd "$stage" && npm pack --json --pack-destination "$work" >"$work/pack.json" 2>"$work/pack.log") \
  || { cat "$work/pack.log" >&2; fail "npm pack"; }
tarball="$(node -e 'const [p] = require(process.argv[1]); console.log(p.filename)' \
  "$work/pack.json")"
tarball="$work/$(basename "$tarball")"
[ -f "$tarball" ] || fail "npm pack made no tarball"

say "checking what the tarball holds"
node - "$work/pack.json" "$root" <<'JS'
const fs = require('node:fs');
const [, , packJson, root] = process.argv;
const files = new Set(require(packJson)[0].files.map((f) => f.path));
const needed = ['package.json', 'bin/wacamp.js', 'dist/cli.js', 'dist/commands/run-due.js',
  'dist/sandbox/server.js', 'dist/embedded/server.js',
  ...(fs.existsSync(`${root}/README.md`) ? ['README.md'] : []),
  ...fs.readdirSync(`${root}/sql`).filter((f) => f.endsWith('.sql')).map((f) => `sql/${f}`)];
const missing = needed.filter((f) => !files.has(f));
const stray = [...files].filter((f) => /^(src|test|node_modules)\//.test(f) || f.endsWith('.ts'));
if (missing.length || stray.length) {
  console.error(`missing: ${missing.join(', ') || '-'}; ` +
    `should not ship: ${stray.join(', ') || '-'}`);
  process.exit(1);
}
JS

say "installing $(basename "$tarball") globally into a temporary prefix"
npm install --global --prefix "$prefix" "$tarball" --no-audit --no-fund --loglevel=error \
  >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "npm install -g"; }
[ -x "$prefix/bin/wacamp" ] || fail "no wacamp in $prefix/bin"

say "wacamp --version and --help"
expected="$(node -p 'require(process.argv[1]).version' "$root/package.json")"
version="$(wacamp --version)"
[ "$version" = "$expected" ] || fail "--version printed '$version', expected '$expected'"
wacamp --help | grep -q 'run-due' || fail "--help does not list run-due"

say "wacamp sandbox answers a POST like Meta does"
(cd "$elsewhere" && exec env -i PATH="$prefix/bin:$PATH" HOME="$work" NO_COLOR=1 \
  wacamp sandbox --json >"$work/sandbox.out" 2>"$work/sandbox.err") &
sandbox_pid=$!
for _ in $(seq 1 100); do
  grep -q '"url"' "$work/sandbox.out" 2>/dev/null && break
  sleep 0.1
done
url="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).url' \
  "$work/sandbox.out")" || fail "the sandbox printed no URL: $(cat "$work/sandbox.err")"
answer="$(curl -sS -X POST "$url/v23.0/100200300/messages" \
  -H 'Authorization: Bearer sandbox-token' -H 'Content-Type: application/json' \
  -d '{"messaging_product":"whatsapp","recipient_type":"individual","to":"12025550143",
       "type":"template","template":{"name":"hello_world","language":{"code":"en_US"}}}')"
echo "$answer" | grep -q '"id":"wamid\.' || fail "the sandbox answered: $answer"
kill -TERM "$sandbox_pid"
wait "$sandbox_pid" || fail "the sandbox did not exit 0 on SIGTERM"
sandbox_pid=""

say "WACAMP_HOME=<tmp> wacamp demo --recipients 200"
wacamp demo --recipients 200 >"$work/demo.out" 2>&1 || { cat "$work/demo.out" >&2; fail "demo"; }
grep -q 'completed' "$work/demo.out" || { cat "$work/demo.out" >&2; fail "demo did not complete"; }
wacamp db stop >/dev/null

say "ok"
