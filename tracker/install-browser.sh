#!/usr/bin/env bash
# Debian's Chromium for the tracker's browser tests (tests/test_tracker_browser.py), which
# drive it with Playwright at /usr/bin/chromium: Playwright's own browser download cannot work
# here. Idempotent: does nothing when Chromium is already installed.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    # Not fatal here: the browser tests then skip, or fail with CI=true, saying why.
    echo "install-browser.sh: /usr/bin/chromium is missing and installing it needs root and" \
        "apt-get: run 'apt-get install chromium' as root" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet: fetch them when apt knows no chromium to install.
if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq
fi
# Stale lists can name versions the mirror no longer has: refresh them once and retry.
apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
/usr/bin/chromium --version
