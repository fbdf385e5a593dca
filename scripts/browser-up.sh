#!/usr/bin/env bash
# Make sure a chromium exists for the web console's browser tests (tests/browser; used by .ci/run; safe to run again).
# Playwright's own browser download cannot be reached from CI, so the tests launch Debian's chromium
# (executable_path=/usr/bin/chromium, or $BATCHPLANE_CHROMIUM). Exit status non-zero when it cannot be installed:
# CI must fail then, not skip the browser tests.
set -euo pipefail
if [ -n "${BATCHPLANE_CHROMIUM:-}" ] && [ -x "$BATCHPLANE_CHROMIUM" ]; then exit 0; fi
command -v chromium >/dev/null 2>&1 && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "browser-up: chromium did not install" >&2; exit 1; }
