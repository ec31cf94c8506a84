#!/usr/bin/env bash
# Installs what the browser test (tests/browser) needs; idempotent and quick when
# everything is there:
#   - Debian's chromium (apt-get), the browser the test drives (never a downloaded one);
#   - Node.js and npm (apt-get) if the machine has none;
#   - playwright-core from tests/browser/package-lock.json (npm ci), re-run only
#     when the lockfile changed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$repo/tests/browser"
say() { printf '[setup-browser] %s\n' "$*"; }

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  say "installing ${missing[*]} (apt-get)"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp="$dir/node_modules/.mcphealth-lock-sha"
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d "$dir/node_modules/playwright-core" ]]; then
  say "node_modules up to date"
else
  say "npm ci (tests/browser/package-lock.json)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi
say "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown')"
say "node: $(node --version); playwright-core $(node -p "require('$dir/node_modules/playwright-core/package.json').version")"
