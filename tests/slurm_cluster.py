"""A throwaway single-node Slurm cluster for tests: its own munged, slurmctld and slurmd.

Everything lives under one folder: the config (``slurm.conf``, ``gres.conf``, ``cgroup.conf``),
the MUNGE key and socket, stand-in GPU device files, the state, spool and log folders and the
pid files. The daemons run as the current user (root in CI), in the foreground, as children of
the test process, each in a session of its own, with ``SLURM_CONF`` pointing into that folder
and ``TZ=UTC`` (``sbatch --begin`` is parsed client-side in the client's time zone, so clients
must use :attr:`SlurmCluster.env` too). The binaries come from Debian's packages, installed by
``.ci/install-slurm.sh``.

:func:`start_cluster` raises :class:`SlurmUnavailable` with a one-line reason when the binaries
are missing or the cluster does not come up; the tests turn that into a skip.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CLUSTER_NAME = "milptest"
NODE_NAME = "milpnode"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "squeue", "scancel")
# Processes of ours that a sweep may end (slurmscriptd runs as slurmctld's executable).
DAEMON_EXES = ("munged", "slurmctld", "slurmd", "slurmstepd")
STARTUP_TIMEOUT_S = 30.0
SLURMD_TIMEOUT_S = 10.0
# The daemons live in /usr/sbin, which a non-login shell's PATH may lack.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# A unix socket's path is limited to 108 bytes (sun_path), including the trailing NUL.
MAX_SOCKET_PATH = 100
# Client variables that would point a command at another cluster or change its output format.
FOREIGN_ENV = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SCONTROL_",
               "SACCT_", "SCANCEL_")


class SlurmUnavailable(Exception):
    """Slurm cannot be run here; the message is a one-line reason."""


def _one_line(text: str, limit: int = 400) -> str:
    """Collapse ``text`` to one line of at most ``limit`` characters, keeping its end."""
    line = " | ".join(s.strip() for s in text.splitlines() if s.strip())
    return line if len(line) <= limit else "..." + line[-limit:]


def _tail(path: Path, lines: int = 4) -> str:
    """The last ``lines`` lines of a log file on one line ('' if there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return _one_line("\n".join(text.splitlines()[-lines:]))


def _free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _base_env() -> dict[str, str]:
    """The caller's environment less any Slurm client variable (a test run inside a Slurm job
    must not talk to that cluster), with /usr/sbin on PATH and TZ=UTC."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    path = env.get("PATH", os.defpath).split(os.pathsep)
    env["PATH"] = os.pathsep.join(path + [d for d in SBIN if d not in path])
    env["TZ"] = "UTC"
    return env


def _node_shape(env: dict[str, str]) -> dict[str, int]:
    """The node's hardware as slurmd sees it (``slurmd -C``), so slurmd and slurm.conf agree;
    falls back to the CPU count and /proc/meminfo."""
    shape: dict[str, int] = {}
    try:
        out = subprocess.run(["slurmd", "-C"], env=env, capture_output=True, text=True,
                             timeout=20).stdout
        for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore",
                    "RealMemory"):
            m = re.search(rf"\b{key}=(\d+)", out)
            if m:
                shape[key] = int(m.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    if "CPUs" not in shape:
        shape = {"CPUs": os.cpu_count() or 1}
    if "RealMemory" not in shape:
        try:
            kb = next(int(line.split()[1]) for line in
                      Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))
            shape["RealMemory"] = kb // 1024
        except (OSError, StopIteration, ValueError, IndexError):
            shape["RealMemory"] = 1024
    # Declare a little less memory than there is: slurmd marks a node whose memory is below
    # the configured RealMemory invalid.
    shape["RealMemory"] = max(1, int(shape["RealMemory"] * 0.9))
    return shape


# ---------------------------------------------------------------- processes

OWNER_VAR = "MILP_SLURM_TEST_OWNER"


def _proc_table() -> dict[int, tuple[int, int, str, str]]:
    """pid -> (ppid, session id, state, start time in clock ticks) for every process."""
    table = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                table[int(proc.name)] = (int(fields[1]), int(fields[3]), fields[0], fields[19])
            except (OSError, IndexError, ValueError):
                pass
    return table


def _owner_token(pid: int, table: dict[int, tuple[int, int, str, str]]) -> str:
    """'<pid>:<start time>' of a process: names it even after its pid is reused."""
    return f"{pid}:{table[pid][3]}" if pid in table else ""


def _ancestors(pid: int, table: dict[int, tuple[int, int, str, str]]) -> set[int]:
    seen = set()
    while pid in table and pid not in seen and pid > 1:
        seen.add(pid)
        pid = table[pid][0]
    return seen


def _leftovers(workdir: Path) -> list[int]:
    """Processes to end before starting a cluster in ``workdir`` or after stopping it:
    munged, slurmctld, slurmd and slurmstepd processes (found by scanning /proc, so a stale pid
    file cannot point us at someone else's process) that either belong to a cluster in
    ``workdir`` (their command line or SLURM_CONF names it) or belong to any test cluster whose
    owner (the process that called start_cluster, named in their environment) is gone, as after
    a killed test run; plus everything in their sessions or below them (slurmscriptd, jobs).
    Never this process or its ancestors."""
    marker = str(workdir).encode() + b"/"
    conf = b"SLURM_CONF=" + str(workdir / "slurm.conf").encode() + b"\0"
    owner = OWNER_VAR.encode() + b"="
    table = _proc_table()
    roots = set()
    for pid in table:
        if _exe(pid) not in DAEMON_EXES:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes() + b"\0"
        except OSError:
            continue
        if marker in cmdline or conf in environ:
            roots.add(pid)
            continue
        for var in environ.split(b"\0"):
            if var.startswith(owner):
                token = var[len(owner):].decode(errors="replace")
                owner_pid = int(token.split(":")[0]) if token.split(":")[0].isdigit() else 0
                if _owner_token(owner_pid, table) != token or table[owner_pid][2] == "Z":
                    roots.add(pid)
    found = set(roots)
    for pid, (_, sid, _, _) in table.items():
        if sid in roots or _ancestors(pid, table) & roots:
            found.add(pid)
    found -= _ancestors(os.getpid(), table)
    return sorted(p for p in found if table.get(p, (0, 0, "Z", ""))[2] != "Z")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _exe(pid: int) -> str:
    """The name of a process's executable, '' if unknown. Debian installs the real binaries
    as /usr/sbin/slurmctld-wlm etc. (alternatives): the suffix is dropped."""
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""  # gone, a kernel thread, or not ours to see
    return exe.removesuffix(" (deleted)").removesuffix("-wlm")


def _kill_and_wait(pids: list[int], timeout: float = 10.0) -> list[int]:
    """End ``pids``: SIGTERM to the daemons (munged, slurmctld, slurmd), SIGKILL to the rest
    (job steps and their processes, which would linger otherwise); wait up to ``timeout``
    seconds, SIGKILL what is left and wait a little. Returns the pids still alive then."""
    for pid in pids:
        sig = signal.SIGTERM if _exe(pid) in ("munged", "slurmctld", "slurmd") else \
            signal.SIGKILL
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    remaining = [p for p in pids if _alive(p)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.1)
        remaining = [p for p in remaining if _alive(p)]
    for pid in remaining:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while remaining and time.monotonic() < deadline:
        time.sleep(0.1)
        remaining = [p for p in remaining if _alive(p)]
    return remaining


# ---------------------------------------------------------------- scontrol output

# A key in `scontrol show ... -o` output: a capitalised word, possibly with '/', ':' or '_'
# inside (CPUs/Task, ReqB:S:C:T, NtasksPerN:B:S:C, MCS_label), directly followed by '='.
_KEY = re.compile(r"[A-Z][A-Za-z0-9_/:]*=")


def parse_scontrol_line(line: str) -> dict[str, str]:
    """Parse one ``scontrol show ... -o`` line of ``Key=value`` pairs into a dict.

    Values may hold '=' (``TRES=cpu=1,mem=1M,node=1``), be empty (``NodeList=``, ``Power=``)
    or hold spaces (``WorkDir=/tmp/a b``, ``Command=/x/run me``, ``Comment=...``): a
    space-separated word that does not start with ``Key=`` continues the previous value.
    """
    result: dict[str, str] = {}
    key = None
    for word in line.strip().split(" "):
        m = _KEY.match(word)
        if m:
            key = m.group(0)[:-1]
            result[key] = word[m.end():]
        elif key is not None:
            result[key] += " " + word
    return result


# ---------------------------------------------------------------- the cluster

@dataclass
class SlurmCluster:
    """A running test cluster. Use :attr:`env` for every Slurm client call (or :meth:`run`)."""

    workdir: Path
    env: dict[str, str]
    partitions: list[str]
    node: str = NODE_NAME
    gpus: int = 8
    slurmd_started: bool = False
    slurmd_problem: str = ""
    startup_seconds: float = 0.0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.workdir / "slurm.conf"

    def run(self, args: list[str], *, check: bool = False,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run a Slurm client command (``["sbatch", ...]``) against this cluster, with text
        output captured, from the cluster's folder (where ``slurm-<id>.out`` files go)."""
        return subprocess.run(args, env=self.env, capture_output=True, text=True, check=check,
                              timeout=timeout, cwd=self.workdir)

    def show_job(self, job_id: int | str) -> dict[str, str]:
        """``scontrol show job -o <id>`` as a dict of its ``Key=value`` pairs."""
        r = self.run(["scontrol", "show", "job", "-o", str(job_id)])
        if r.returncode != 0:
            raise RuntimeError(f"scontrol show job {job_id} failed: "
                               f"{_one_line(r.stderr or r.stdout)}")
        lines = [s for s in r.stdout.splitlines() if s.strip()]
        for line in lines:
            if line.startswith(f"JobId={job_id} "):
                return parse_scontrol_line(line)
        if not lines:
            raise RuntimeError(f"scontrol show job {job_id} printed nothing")
        return parse_scontrol_line(lines[0])

    def stop(self) -> None:
        """Stop every daemon this cluster started (slurmd, slurmctld, then munged), wait for
        them, and end whatever else of a cluster in this folder still runs."""
        ctld = self.processes.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            # Cancel every job first, so that slurmd ends their steps itself.
            try:
                self.run(["scancel", f"--user={_user()}"], timeout=10)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and self.run(
                        ["squeue", "-h", "-t", "RUNNING,COMPLETING", "-o", "%i"],
                        timeout=5).stdout.strip():
                    time.sleep(0.2)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.processes.get(name)
            if p is None:
                continue
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        self.processes.clear()
        _kill_and_wait(_leftovers(self.workdir))


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER", "root")


def _write_config(workdir: Path, partitions: list[str], gpus: int, munge_socket: Path,
                  env: dict[str, str]) -> None:
    shape = _node_shape(env)
    # Let every GPU job have a CPU even on a small machine: declare at least one CPU per GPU
    # and have slurmd trust the config over the hardware (config_overrides).
    if shape["CPUs"] < gpus:
        shape = {"CPUs": gpus, "RealMemory": shape["RealMemory"]}
    ctld_port = _free_port()
    slurmd_port = _free_port()
    while slurmd_port == ctld_port:
        slurmd_port = _free_port()
    node = " ".join(f"{k}={v}" for k, v in shape.items())
    lines = [
        f"ClusterName={CLUSTER_NAME}",
        "SlurmctldHost=localhost",
        f"SlurmUser={_user()}",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={workdir / 'state'}",
        f"SlurmdSpoolDir={workdir / 'spool'}",
        f"SlurmctldPidFile={workdir / 'slurmctld.pid'}",
        f"SlurmdPidFile={workdir / 'slurmd.pid'}",
        f"SlurmctldLogFile={workdir / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={workdir / 'log' / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "SlurmdParameters=config_overrides",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SchedulerType=sched/backfill",
        # Start a job within seconds of its begin time or dependency clearing (the defaults
        # look every 30-60 s), so that plans of a few seconds run in a test.
        "SchedulerParameters=sched_interval=2,bf_interval=2",
        # Keep finished jobs in `scontrol show job` for an hour (default 300 s): there is no
        # accounting database (slurmdbd) behind sacct here, so that is where tests read them.
        "MinJobAge=3600",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "MailProg=/bin/true",
        "ReturnToService=2",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "GresTypes=gpu",
        f"NodeName={NODE_NAME} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 "
        f"{node} Gres=gpu:{gpus} State=UNKNOWN",
    ]
    for i, name in enumerate(partitions):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"bad partition name {name!r}")
        lines.append(f"PartitionName={name} Nodes={NODE_NAME} State=UP MaxTime=INFINITE"
                     + (" Default=YES" if i == 0 else ""))
    (workdir / "slurm.conf").write_text("\n".join(lines) + "\n")

    # slurmctld accepts a GPU count alone (Count=), but slurmd 22.05 drops "file-less" GPUs,
    # reports 0 of them, and slurmctld then marks the node INVAL. So each GPU gets a stand-in
    # device file: a character device like /dev/null where we may create one (root), else an
    # empty file (slurmd logs "not a valid character or block device" and carries on).
    # task/none never constrains devices, so nothing opens them.
    dev = workdir / "dev"
    dev.mkdir(exist_ok=True)
    for i in range(gpus):
        path = dev / f"gpu{i}"
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except OSError:
            path.touch()
    files = f"{dev}/gpu[0-{gpus - 1}]" if gpus > 1 else f"{dev}/gpu0"
    (workdir / "gres.conf").write_text(
        f"AutoDetect=off\nNodeName={NODE_NAME} Name=gpu Count={gpus} File={files}\n")
    # slurmd 22.05 loads a cgroup plugin even with task/none and proctrack/linuxproc
    # ("disabled" only exists from 23.02 on).
    (workdir / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")


def _spawn(args: list[str], env: dict[str, str], out: Path) -> subprocess.Popen:
    with open(out, "ab") as f:
        return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=out.parent)


def _wait_for(ready, proc: subprocess.Popen, daemon: str, logs: list[Path],
              timeout: float) -> None:
    """Poll ``ready()`` until it holds; raise SlurmUnavailable if the daemon exits first or
    ``timeout`` seconds pass, quoting the tail of its log."""
    deadline = time.monotonic() + max(timeout, 1.0)
    while not ready():
        if proc.poll() is not None:
            tail = next((t for t in map(_tail, logs) if t), "no log")
            raise SlurmUnavailable(f"{daemon} exited with status {proc.returncode}: {tail}")
        if time.monotonic() > deadline:
            tail = next((t for t in map(_tail, logs) if t), "no log")
            raise SlurmUnavailable(f"{daemon} not ready after {timeout:.0f} s: {tail}")
        time.sleep(0.2)


def _node_state(cluster: SlurmCluster) -> str:
    try:
        r = cluster.run(["sinfo", "-h", "-N", "-n", NODE_NAME, "-o", "%T"], timeout=5)
    except subprocess.TimeoutExpired:
        return ""
    states = r.stdout.split()
    return states[0].rstrip("*~#!%$@^-") if states else ""


def start_cluster(workdir: Path, partitions: list[str], gpus: int = 8) -> SlurmCluster:
    """Write a one-node cluster's config into ``workdir`` (one partition per name, all on the
    node, the first the default; ``gpus`` GPUs on the node) and start munged, slurmctld and,
    best effort, slurmd. Returns once ``sinfo`` answers (at most 30 s), and slurmd's node is
    up or 10 more seconds have passed (see :attr:`SlurmCluster.slurmd_started`). Daemons an
    earlier run left in ``workdir`` are ended first, and its state is wiped.
    Raises :class:`SlurmUnavailable` with a one-line reason."""
    t0 = time.monotonic()
    if not partitions:
        raise ValueError("at least one partition is needed")
    if gpus < 1:
        raise ValueError("at least one GPU is needed")
    workdir = Path(workdir).resolve()
    env = _base_env()
    missing = [b for b in BINARIES if shutil.which(b, path=env["PATH"]) is None]
    if missing:
        raise SlurmUnavailable(f"{', '.join(missing)} not found (.ci/install-slurm.sh "
                               f"installs them)")

    workdir.mkdir(parents=True, exist_ok=True)
    stuck = _kill_and_wait(_leftovers(workdir))
    if stuck:
        raise SlurmUnavailable(f"processes of an earlier cluster in {workdir} do not stop: "
                               f"{stuck}")
    for sub in ("state", "spool", "log", "munge", "dev"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
        (workdir / sub).mkdir()
    for name in ("munged", "slurmctld", "slurmd"):
        (workdir / f"{name}.pid").unlink(missing_ok=True)

    munge_dir = workdir / "munge"
    munge_dir.chmod(0o755)  # munged wants its socket's folder searchable by all
    munge_socket = munge_dir / "munge.socket"
    if len(str(munge_socket).encode()) > MAX_SOCKET_PATH:
        raise SlurmUnavailable(f"munge socket path too long for a unix socket: {munge_socket}")
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    _write_config(workdir, partitions, gpus, munge_socket, env)

    env["SLURM_CONF"] = str(workdir / "slurm.conf")
    # Marks the daemons as this process's, so a later start_cluster can end them if this
    # process dies without stopping them.
    env[OWNER_VAR] = _owner_token(os.getpid(), _proc_table())
    cluster = SlurmCluster(workdir=workdir, env=env, partitions=list(partitions), gpus=gpus)
    log = workdir / "log"
    try:
        # --force: munged refuses a socket whose parent folders are not searchable by all,
        # and pytest's temporary folders are 0700.
        munged = cluster.processes["munged"] = _spawn([
            "munged", "--foreground", "--force", f"--socket={munge_socket}",
            f"--key-file={key}", f"--pid-file={workdir / 'munged.pid'}",
            f"--seed-file={munge_dir / 'munged.seed'}", f"--log-file={log / 'munged.log'}",
        ], env, log / "munged.out")
        _wait_for(munge_socket.exists, munged, "munged", [log / "munged.out"], 10)

        # -i: ignore errors in state files (there are none: the state folder is new).
        slurmctld = cluster.processes["slurmctld"] = _spawn(
            ["slurmctld", "-D", "-i", "-f", str(cluster.conf)], env, log / "slurmctld.out")

        def sinfo_answers() -> bool:
            try:
                return cluster.run(["sinfo", "-h", "-o", "%P"], timeout=5).returncode == 0
            except subprocess.TimeoutExpired:
                return False

        _wait_for(sinfo_answers, slurmctld, "slurmctld",
                  [log / "slurmctld.log", log / "slurmctld.out"],
                  STARTUP_TIMEOUT_S - (time.monotonic() - t0))

        # slurmd is a bonus: held jobs need only slurmctld.
        slurmd = cluster.processes["slurmd"] = _spawn(
            ["slurmd", "-D", "-f", str(cluster.conf), "-N", NODE_NAME], env,
            log / "slurmd.out")
        try:
            _wait_for(lambda: _node_state(cluster) in ("idle", "mixed", "allocated"), slurmd,
                      "slurmd", [log / "slurmd.log", log / "slurmd.out"], SLURMD_TIMEOUT_S)
            cluster.slurmd_started = True
        except SlurmUnavailable as e:
            cluster.slurmd_problem = str(e)
            cluster.processes.pop("slurmd")
            if slurmd.poll() is None:
                slurmd.terminate()
                slurmd.wait(timeout=10)
    except BaseException:
        cluster.stop()
        raise
    cluster.startup_seconds = time.monotonic() - t0
    return cluster
