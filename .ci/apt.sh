# Sourced by the .ci/install-*.sh scripts: install Debian packages quietly, the output in $log.
# The caller sets $log and defines cannot() (one line on stderr, exit 0: CI never fails here).

lastline() {  # the log's last line, whitespace squeezed
    tail -n 1 "$log" 2>/dev/null | tr -s '[:space:]' ' ' | sed 's/^ //; s/ $//'
}

apt_install() {  # apt_install PACKAGE...: apt-get update, then install, or cannot() with why
    : >"$log"
    if ! apt-get update -qq -o DPkg::Lock::Timeout=300 >>"$log" 2>&1; then
        cannot "apt-get update failed: $(lastline) (log: $log)"
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o DPkg::Lock::Timeout=300 "$@" >>"$log" 2>&1; then
        cannot "apt-get install $* failed: $(lastline) (log: $log)"
    fi
}
