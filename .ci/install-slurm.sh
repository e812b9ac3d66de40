#!/usr/bin/env bash
# Install a real Slurm (slurmctld, slurmd, client tools) and MUNGE from Debian's packages, for
# tests/test_slurm_cluster.py, and rsync, which the default transfer command of the exports runs
# (tests/test_export.py runs it as an rsync older than 3.2.4 would). Idempotent: does nothing
# when the binaries are already on PATH.
# Never fails CI: where Slurm cannot be installed it says why on one line and exits 0, and the
# Slurm tests then skip, saying so. The daemons are not started here: the tests start their own
# (tests/slurm_cluster.py), with their own config under a temporary folder.
set -uo pipefail

# The daemons live in /usr/sbin, which a non-login root shell may not have on PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log=/tmp/install-slurm.log
need=(slurmctld slurmd sbatch munged rsync)
packages=(slurmctld slurmd slurm-client munge rsync)

missing() {
    local b
    for b in "${need[@]}"; do
        command -v "$b" >/dev/null 2>&1 || { echo "$b"; return 0; }
    done
    return 1
}

# shellcheck source=.ci/apt.sh
. "$(dirname "$0")/apt.sh"

cannot() {
    echo "install-slurm: cannot install Slurm here: $*" >&2
    exit 0
}

if ! missing >/dev/null; then
    echo "install-slurm: Slurm already installed ($(slurmctld -V 2>/dev/null || echo "version unknown"))"
    exit 0
fi

[ "$EUID" -eq 0 ] || cannot "not root (missing: $(missing))"
command -v apt-get >/dev/null 2>&1 || cannot "no apt-get (missing: $(missing))"

start=$SECONDS
apt_install "${packages[@]}"
if m=$(missing); then
    cannot "installed ${packages[*]} but $m is still not on PATH (log: $log)"
fi
echo "install-slurm: installed $(slurmctld -V 2>/dev/null) in $((SECONDS - start)) s (log: $log)"
