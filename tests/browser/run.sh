#!/usr/bin/env bash
# Runs the browser tests: installs Chromium (Debian package) and the npm dev dependencies when
# missing, then node's test runner.
#   tests/browser/run.sh              all tests (call.test.mjs needs KHAM_BIN or a built target/*/kham)
#   tests/browser/run.sh ui.test.mjs  only the given files
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x "${KHAM_CHROMIUM:-/usr/bin/chromium}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

# coturn for the TURN tests (turn.test.mjs starts its own on loopback, network.test.mjs one
# over TLS on 443); nftables and conntrack for the network-namespace test's router
# (network.test.mjs: NAT, firewalls, and a NAT rebinding by deleting its UDP mappings).
if ! command -v turnserver >/dev/null || ! command -v nft >/dev/null || ! command -v conntrack >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends coturn nftables conntrack >/dev/null
fi

if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/ws ]; then
  npm ci --no-audit --no-fund
fi

# The web client's JSDoc types (web-client/tsconfig.json: checkJs).
npx --no-install tsc -p ../../web-client

if [ "$#" -eq 0 ]; then
  set -- sdk.test.mjs ui.test.mjs adaptive-ui.test.mjs call.test.mjs consult-frames.test.mjs chat.test.mjs vitals.test.mjs images.test.mjs tls.test.mjs join-time.test.mjs dashboard.test.mjs queue.test.mjs weak-link.test.mjs screen-share.test.mjs reconnect.test.mjs ice-tcp.test.mjs turn.test.mjs network.test.mjs
fi
# One file at a time: Chromium with fake media plus a kham server is plenty for 2 cores.
exec node --test --test-concurrency=1 "$@"
