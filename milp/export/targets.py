"""Where each site of a plan lives in the scheduler: the ``--site-map`` TOML file.

Every key is optional; a site missing from the file gets the defaults, so with no file at all a
site ``s01-solar`` is Slurm partition ``s01-solar``, host ``s01-solar`` and Kubernetes node label
value ``s01-solar``::

    [defaults]
    gres = "gpu:1"                    # Slurm --gres of run steps ("" for none)
    gpu_resource = "nvidia.com/gpu"   # Kubernetes resource limit of run steps ("" for none)
    checkpoint = "/checkpoints/{job}" # checkpoint path at a site ({job} is replaced)
    sbatch = ["--account=green"]      # extra sbatch options of every step

    [sites.s01-solar]
    partition = "solar1"              # Slurm partition (default: the site's name)
    cluster = ""                      # Slurm --clusters (multi-cluster setups)
    host = "gpu1.solar1.example.org"  # host in {src}/{dst} of transfers (default: the site)
    node_label = "solar1"             # value of the Kubernetes node label (default: the site)
    checkpoint = "/data/ckpt/{job}"   # overrides the default path at this site
    claim = "ckpt-solar1"             # Kubernetes PVC of the checkpoints here (default:
                                      # --checkpoint-claim; none without it)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from milp.errors import InputError

#: Characters a checkpoint location on another host may hold (its shell may read it).
REMOTE_SAFE = re.compile(r"[A-Za-z0-9_.,+=@%:/-]+")
REMOTE_SAFE_TEXT = "letters, digits and _ . , + = @ % : / -"
#: A host for ``host:path``: a name or address, optionally ``user@``, an IPv6 address in [].
REMOTE_HOST = re.compile(r"(?!-)[A-Za-z0-9_.-]+(@(?!-)[A-Za-z0-9_.-]+)?|"
                         r"([A-Za-z0-9_.-]+@)?\[[0-9A-Fa-f:.]+\]")
#: Longest file name most file systems take (bytes): a checkpoint folder named by a job id.
MAX_NAME_BYTES = 255

_DEFAULT_KEYS = {"gres", "gpu_resource", "checkpoint", "sbatch"}
_SITE_KEYS = {"partition", "cluster", "host", "node_label", "checkpoint", "gres", "sbatch",
              "claim"}


@dataclass(frozen=True)
class Target:
    """How one site is addressed by the exported scripts and manifests."""

    site: str
    partition: str
    cluster: str
    host: str
    node_label: str
    checkpoint: str        #: path template at the site; ``{job}`` is the job's id
    gres: str
    gpu_resource: str
    sbatch: tuple[str, ...]
    claim: str = ""        #: PersistentVolumeClaim of the checkpoints ("" for the default)

    def checkpoint_path(self, job: str) -> str:
        """The checkpoint folder of ``job`` at this site (a job id cannot climb out of it, be
        longer than a file name, or make the path look like a command's option)."""
        if "/" in job or "\\" in job or job in (".", ".."):
            raise InputError("plan.json", f"job id {job!r} cannot be part of a checkpoint path "
                             f"(no '/', '\\', '.' or '..')", field="jobs")
        if len(job.encode("utf-8")) > MAX_NAME_BYTES:
            raise InputError("plan.json", f"job id {job!r} cannot be part of a checkpoint path: "
                             f"it is longer than a file name may be ({MAX_NAME_BYTES} bytes)",
                             field="jobs")
        path = self.checkpoint.replace("{job}", job)
        if path.startswith("-"):
            raise InputError("plan.json", f"checkpoint path {path!r} of job {job!r} would be "
                             f"read as a command option (it starts with '-')", field="jobs")
        return path

    def checkpoint_url(self, job: str) -> str:
        """``host:path`` as rsync/scp take it (just the path when ``host`` is empty).

        This location reaches another host, whose shell reads the path when the transfer
        command passes it on the remote command line (scp, and rsync older than 3.2.4 without
        ``-s``): host and path may hold only :data:`REMOTE_SAFE` characters, so that no job id
        or site name can make that shell run anything."""
        path = self.checkpoint_path(job)
        if self.host and not REMOTE_HOST.fullmatch(self.host):
            raise InputError("--site-map", f"host {self.host!r} of site {self.site!r} is not a "
                             f"host name for a transfer (letters, digits, '.', '-', '_', user@, "
                             f"[IPv6]; not starting with '-'); set sites.\"{self.site}\".host",
                             field=f"sites.{self.site}.host")
        if not REMOTE_SAFE.fullmatch(path):
            template = self.checkpoint.replace("{job}", "")
            if not REMOTE_SAFE.fullmatch(template or "x"):
                raise InputError("--site-map", f"checkpoint path {self.checkpoint!r} of site "
                                 f"{self.site!r} holds characters a remote shell would read "
                                 f"({REMOTE_SAFE_TEXT} only)", field=f"sites.{self.site}.checkpoint")
            raise InputError("plan.json", f"job id {job!r} cannot be part of a checkpoint "
                             f"location on another host: the other host's shell may read it (scp, "
                             f"rsync before 3.2.4), so a job that moves may use "
                             f"{REMOTE_SAFE_TEXT} only", field="jobs")
        return f"{self.host}:{path}" if self.host else path


class SiteMap:
    """The targets of every site (defaults for sites the file does not name)."""

    def __init__(self, defaults: dict | None = None, sites: dict | None = None):
        self.defaults = {"gres": "gpu:1", "gpu_resource": "nvidia.com/gpu",
                         "checkpoint": "/checkpoints/{job}", "sbatch": [], **(defaults or {})}
        self.sites = sites or {}

    def __getitem__(self, site: str) -> Target:
        own = self.sites.get(site, {})
        d = {**self.defaults, **own}
        return Target(site=site, partition=own.get("partition", site),
                      cluster=own.get("cluster", ""), host=own.get("host", site),
                      node_label=own.get("node_label", site), checkpoint=d["checkpoint"],
                      gres=d["gres"], gpu_resource=d["gpu_resource"],
                      sbatch=tuple(d["sbatch"]), claim=own.get("claim", ""))

    @classmethod
    def load(cls, path: Path | None) -> "SiteMap":
        """Read and check a site-map file; ``None`` gives the defaults."""
        if path is None:
            return cls()
        from milp.files import read_input

        raw = read_input(path)
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(str(path), "not UTF-8 text") from None
        except tomllib.TOMLDecodeError as e:
            raise InputError(str(path), f"invalid TOML: {e}") from None
        unknown = set(data) - {"defaults", "sites"}
        if unknown:
            raise InputError(str(path), f"unknown table {sorted(unknown)[0]!r} (known: "
                             f"defaults, sites)", field=sorted(unknown)[0])
        defaults = _table(path, data.get("defaults", {}), _DEFAULT_KEYS, "defaults")
        sites = data.get("sites", {})
        if not isinstance(sites, dict):
            raise InputError(str(path), "must be a table of sites", field="sites")
        return cls(defaults, {name: _table(path, t, _SITE_KEYS, f"sites.{name}")
                              for name, t in sites.items()})


#: Keys whose value becomes one word of an sbatch option: no spaces, quotes or control chars.
_WORD_KEYS = {"partition", "cluster", "gres"}


def _table(path: Path, table, keys: set[str], where: str) -> dict:
    if not isinstance(table, dict):
        raise InputError(str(path), "must be a table", field=where)
    for key, value in table.items():
        if key not in keys:
            raise InputError(str(path), f"unknown key (known: {', '.join(sorted(keys))})",
                             field=f"{where}.{key}")
        if key == "sbatch":
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise InputError(str(path), "must be a list of strings", field=f"{where}.{key}")
        elif not isinstance(value, str):
            raise InputError(str(path), "must be a string", field=f"{where}.{key}")
        for v in value if isinstance(value, list) else [value]:
            if not v.isprintable() or (key in _WORD_KEYS and not word(v)):
                raise InputError(str(path), f"{v!r} is not a usable value here (printable, and "
                                 f"for {', '.join(sorted(_WORD_KEYS))} one word without quotes)",
                                 field=f"{where}.{key}")
    return dict(table)


def word(text: str) -> bool:
    """Usable as one word of an sbatch option (or empty)."""
    return text == "" or (text.isprintable() and not any(c.isspace() or c in "'\"\\$`;"
                                                          for c in text))
