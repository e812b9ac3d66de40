#!/usr/bin/env bash
# Install a headless Chromium (Debian's package) and fonts, for tests/test_report_browser.py,
# which opens a report.html in it and checks the screenshot. Idempotent: does nothing when a
# Chromium is already on PATH.
# Never fails CI: where Chromium cannot be installed it says why on one line and exits 0, and
# the browser test then skips, saying so.
set -uo pipefail

log=/tmp/install-chromium.log
packages=(chromium fonts-dejavu-core)

found() {
    local b
    for b in chromium chromium-browser google-chrome; do
        command -v "$b" >/dev/null 2>&1 && { echo "$b"; return 0; }
    done
    return 1
}

# shellcheck source=.ci/apt.sh
. "$(dirname "$0")/apt.sh"

cannot() {
    echo "install-chromium: cannot install Chromium here: $*" >&2
    exit 0
}

if b=$(found); then
    echo "install-chromium: $b already installed ($("$b" --version 2>/dev/null || echo "version unknown"))"
    exit 0
fi

[ "$EUID" -eq 0 ] || cannot "not root"
command -v apt-get >/dev/null 2>&1 || cannot "no apt-get"

start=$SECONDS
apt_install "${packages[@]}"
b=$(found) || cannot "installed ${packages[*]} but no chromium is on PATH (log: $log)"
echo "install-chromium: installed $("$b" --version 2>/dev/null) in $((SECONDS - start)) s (log: $log)"
