"""Hostile inputs: a corpus of broken instance folders and a fuzzer over tiny-3site's files.

``tests/corpus/<case>/`` is a copy of tiny-3site's five files with ONE defect;
``tests/corpus/expected.csv`` says, per case, which file was edited and the error the CLI must
print: file, line, field (as printed, unprintable characters escaped) and a message fragment
(empty line / field = the message must name none). The files are committed byte for byte
(``.gitattributes``: ``tests/corpus/** -text``).

The CLI contract for bad input: exit code 2, nothing on stdout, exactly one line on stderr,
``error: <file>[ line N][, field 'x']: <message>``, no traceback, and ``milp plan`` writes nothing.
All cases go through the real entry point ``milp.cli:main`` in-process (cheap); a few also as
subprocesses of the installed console script. The fuzzer mutates one file of tiny-3site at a time
and calls the loader: it must load a sane instance or raise a one-line InputError naming a file
that the mutation can affect (and a line for any CSV problem).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from milp.cli import main
from milp.errors import InputError
from milp.instance import HUGE, describe, load_instance
from tests.conftest import ROOT, TINY

CORPUS = Path(__file__).resolve().parent / "corpus"
FILES = ("instance.toml", "sites.csv", "renewable.csv", "links.csv", "jobs.csv")
TOML, SITES, REN, LINKS, JOBS = FILES

with open(CORPUS / "expected.csv", newline="", encoding="utf-8") as _fh:
    EXPECTED = {row["case"]: row for row in csv.DictReader(_fh)}

#: Cases also run as subprocesses (both ``check`` and ``plan``): one per kind of failure.
SUBPROCESS_CASES = ["missing-jobs-csv", "empty-sites-csv", "truncated-jobs-mid-time",
                    "non-utf8-cr-line-endings", "toml-start-newline",
                    "sites-name-with-newline", "links-to-itself"]


def expected_prefix(row: dict) -> str:
    """The start of the stderr line for one corpus case, up to and including ': '."""
    where = row["file"]
    if row["line"]:
        where += f" line {row['line']}"
    if row["field"]:
        where += f", field '{row['field']}'"
    return f"error: {where}: "


def assert_one_error_line(code, out: str, err: str, row: dict) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert len(err.splitlines()) == 1, repr(err)          # no \r, \u2028, ... either
    line = err[:-1]
    prefix = expected_prefix(row)
    assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
    assert row["message"] in line[len(prefix):], line


def run_main(*args: str) -> tuple[int, str, str]:
    """Run the console entry point ``milp.cli:main`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(sys, "argv", ["milp", *map(str, args)]), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def cli_command() -> list[str]:
    """The installed console script (the real entry point), else the same function via -c."""
    script = Path(sys.executable).parent / "milp"
    if not script.is_file():
        found = shutil.which("milp")
        script = Path(found) if found else None
    if script is not None:
        return [str(script)]
    return [sys.executable, "-c", "from milp.cli import main; main()"]


def files_under(folder: Path) -> list[Path]:
    return list(folder.rglob("*")) if folder.exists() else []


# ---- the corpus itself ----------------------------------------------------------------------

def test_corpus_lists_every_case_and_each_has_one_defect():
    folders = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
    assert folders == sorted(EXPECTED), "expected.csv and tests/corpus/ disagree"
    assert len(folders) >= 40
    for case, row in EXPECTED.items():
        changed = {f for f in FILES
                   if not (CORPUS / case / f).is_file()
                   or (CORPUS / case / f).read_bytes() != (TINY / f).read_bytes()}
        assert changed == {row["edited"]}, case
        assert {p.name for p in (CORPUS / case).iterdir()} <= set(FILES), case
        assert row["file"] in FILES and row["message"], case


def test_gitattributes_keeps_corpus_bytes():
    rules = (ROOT / ".gitattributes").read_text().split("\n")
    assert "tests/corpus/** -text" in rules


# ---- the corpus through the CLI, in-process -------------------------------------------------

@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_corpus_check_in_process(case):
    assert_one_error_line(*run_main("check", CORPUS / case), EXPECTED[case])


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_corpus_plan_in_process_writes_nothing(case, tmp_path):
    out = tmp_path / "out"
    out.mkdir()                                   # an existing, empty --out folder
    assert_one_error_line(*run_main("plan", CORPUS / case, "--policy", "static", "--out", out),
                          EXPECTED[case])
    assert files_under(out) == [], "milp plan left files behind after a failure"


# ---- a few cases through the installed console script ---------------------------------------

@pytest.fixture(scope="module")
def subprocess_runs(tmp_path_factory):
    """Run every (case, command) pair of SUBPROCESS_CASES at once, a few processes at a time."""
    base = tmp_path_factory.mktemp("plan-out")
    cmd = cli_command()
    jobs = {}
    for case in SUBPROCESS_CASES:
        jobs[case, "check"] = ([*cmd, "check", str(CORPUS / case)], None)
        out = base / case                          # does not exist: plan must not create it
        jobs[case, "plan"] = ([*cmd, "plan", str(CORPUS / case), "--policy", "static",
                               "--out", str(out)], out)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}

    def run(argv):
        return subprocess.run(argv, capture_output=True, cwd=ROOT, timeout=120, env=env,
                              encoding="utf-8", errors="backslashreplace")

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        done = dict(zip(jobs, pool.map(run, [argv for argv, _ in jobs.values()])))
    return {key: (done[key], jobs[key][1]) for key in jobs}


@pytest.mark.parametrize("command", ["check", "plan"])
@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_corpus_console_script(subprocess_runs, case, command):
    r, out = subprocess_runs[case, command]
    assert_one_error_line(r.returncode, r.stdout, r.stderr, EXPECTED[case])
    if out is not None:
        assert files_under(out) == [], "milp plan left files behind after a failure"


# ---- fuzzer ---------------------------------------------------------------------------------

LONG = "x" * 10_000
TOO_LONG = "y" * 140_000          # beyond the csv module's field size limit (131072)
NASTY = ["", " ", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-1", "0", "-0", "0.5",
         "1e400", "-1e400", "1e300", "1e13", "1e12", "1e-400", "9" * 400, "0x10", "1_000",
         "\u22121", "é", "\x00", "\ufeff", "\u2028", "\x85", "\t", "\x0b", LONG, TOO_LONG,
         "2024-06-01T00:07:00", "2024-06-01T00:00:00", "2024-06-01T00:00:00-07:00",
         "2024-06-01T00:15:00-07:00", "2024-06-02T00:00:00-07:00", "2024-06-01T23:45:00-07:00",
         "2024-06-01T12:00:00Z", "2024-06-01", "9999-12-31T23:59:59+23:59",
         "0001-01-01T00:00:00-23:59", ",", ",,", '"', '""', '"a,b"', '"a\nb"', "\n", "\r",
         "\r\n", "solar", "wind", "city", "j01", "time", "true", "[1, 2]", "{}", "'x'", "\\",
         "#", "=", "[migration]"]
NASTY_BYTES = [b"\xff", b"\xc3", b"\xe9", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00",
               b"\r", b"\n", b"\xef\xbb\xbf", b'"', b",", b"\xc0\xaf"]

token = st.one_of(st.sampled_from(NASTY), st.text(max_size=12),
                  st.text(alphabet="0123456789.e+-:TZ", max_size=12))
#: instance.toml values: numbers and times that parse as TOML, so that the checks after the
#: parse (and the CSVs' consistency with start and slot_minutes) get exercised too.
toml_token = st.one_of(
    token, st.integers(-10**20, 10**20).map(str), st.floats().map(repr),
    st.sampled_from(["15", "30", "7", "60", "0.25", "1e9", "1e-9", "96", "95", "97", "1", "100000",
                     "2024-06-01T00:00:00-07:00", "2024-06-01T00:15:00-07:00",
                     "2024-06-01T07:00:00Z", "2024-06-01T00:00:00+00:00",
                     "9999-12-31T23:00:00-07:00", "0001-01-01T00:00:00+00:00"]))
raw_bytes = st.one_of(st.sampled_from(NASTY_BYTES), st.binary(min_size=1, max_size=6))


def _lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\n")


def _toml_value(tok: str, quoted: bool) -> bytes:
    # JSON string escapes are valid TOML basic-string escapes.
    return (json.dumps(tok) if quoted else tok).encode("utf-8")


@st.composite
def mutation(draw, raw: bytes, name: str):
    """One random edit of ``raw``: (new bytes, physical line the edit starts on or None)."""
    lines = _lines(raw)
    n = len(lines) - (lines[-1] == b"")           # lines, without the empty tail after "\n"
    op = draw(st.sampled_from(["field", "field", "field", "delete", "duplicate", "swap",
                               "truncate", "insert"])) if n else "insert"
    if op == "field":
        i = draw(st.integers(0, n - 1))
        tok = draw(toml_token if name == TOML else token)
        if name == TOML:
            line = lines[i]
            if b"=" not in line or line.lstrip().startswith(b"#"):
                lines[i] = tok.encode("utf-8")
            else:
                key = line.split(b"=", 1)[0]
                lines[i] = key + b"= " + _toml_value(tok, draw(st.booleans()))
        else:
            fields = lines[i].split(b",")
            k = draw(st.integers(0, len(fields) - 1))
            fields[k] = tok.encode("utf-8")
            lines[i] = b",".join(fields)
        return b"\n".join(lines), i + 1
    if op == "delete":
        i = draw(st.integers(0, n - 1))
        del lines[i]
        return b"\n".join(lines), None
    if op == "duplicate":
        i = draw(st.integers(0, n - 1))
        lines.insert(i, lines[i])
        return b"\n".join(lines), None
    if op == "swap":
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines), None
    if op == "truncate":
        return raw[:draw(st.integers(0, len(raw) - 1))], None
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + draw(raw_bytes) + raw[at:], None


#: Files whose errors a mutation of the key file can cause (the loader reads them in this order
#: and a CSV refers only to sites.csv and instance.toml).
AFFECTED = {TOML: set(FILES), SITES: {SITES, REN, LINKS, JOBS}, REN: {REN}, LINKS: {LINKS},
            JOBS: {JOBS}}


def physical_lines(raw: bytes) -> int:
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1


def check_loaded(inst) -> None:
    """A loaded instance is sane: what the loader accepts, the planners can rely on."""
    assert len(set(inst.sites)) == inst.n_sites >= 1
    assert len(set(inst.jobs)) == inst.n_jobs >= 1
    assert inst.renewable_kw.shape == (inst.n_sites, inst.n_slots)
    for a in (inst.gpus, inst.idle_kw, inst.renewable_kw, inst.link_gbps, inst.work_h,
              inst.checkpoint_gb, inst.compute_kw):
        assert np.all(np.isfinite(a)) and np.all(a >= 0) and np.all(a <= HUGE)
    assert np.all(inst.gpus >= 1)
    assert not np.diag(inst.link_gbps).any()
    assert np.all(inst.work_h > 0) and np.all(inst.compute_kw > 0)
    assert np.all((0 <= inst.release_slot) & (inst.release_slot < inst.deadline_slot)
                  & (inst.deadline_slot <= inst.n_slots))
    fits = (inst.deadline_slot - inst.release_slot) * inst.slot_h
    assert np.all(inst.work_h <= fits + 1e-9)
    describe(inst)                                     # what `milp check` prints


def check_error(e: InputError, name: str, new: bytes, first_line: int | None,
                folder: Path) -> None:
    text = str(e)
    assert "\n" not in text and "\r" not in text and len(text.splitlines()) == 1, repr(text)
    assert text.startswith(e.file), text
    assert e.file in AFFECTED[name], f"mutating {name} gave an error in {e.file}: {text}"
    if e.file == TOML:
        assert e.line is None, text
    elif e.message != "file is missing":
        assert isinstance(e.line, int), f"no line number: {text}"
        raw = new if e.file == name else (folder / e.file).read_bytes()
        assert 1 <= e.line <= physical_lines(raw) + 1, text
        if e.file == name and first_line is not None:
            assert e.line >= first_line, f"edit on line {first_line}, error on: {text}"
        if e.message.startswith("not UTF-8 text (bad byte 0x"):
            check_utf8_error(raw, e)


def check_utf8_error(raw: bytes, e: InputError) -> None:
    """The named line is the first one that is not UTF-8, and it holds the named byte."""
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")
    for ok in lines[:e.line - 1]:
        ok.decode("utf-8")
    with pytest.raises(UnicodeDecodeError):
        lines[e.line - 1].decode("utf-8")
    byte = int(e.message[len("not UTF-8 text (bad byte 0x"):][:2], 16)
    assert byte in lines[e.line - 1], str(e)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fuzz") / "tiny"
    shutil.copytree(TINY, d)
    return d


@contextlib.contextmanager
def mutated(folder: Path, name: str, new: bytes):
    path = folder / name
    path.write_bytes(new)
    try:
        yield
    finally:
        path.write_bytes((TINY / name).read_bytes())


FUZZ = settings(max_examples=800, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(data=st.data())
def test_fuzz_loader_loads_or_raises_one_line_input_error(fuzz_dir, data):
    name = data.draw(st.sampled_from(FILES), label="file")
    new, first_line = data.draw(mutation((TINY / name).read_bytes(), name), label="edit")
    if data.draw(st.integers(0, 3), label="more edits") == 0:   # now and then, a second edit
        new, _ = data.draw(mutation(new, name), label="edit 2")
        first_line = None
    if name != TOML and data.draw(st.integers(0, 3), label="BOM") == 0:
        new = b"\xef\xbb\xbf" + new                          # accepted in CSVs: no effect
    with mutated(fuzz_dir, name, new):
        try:
            inst = load_instance(fuzz_dir)
        except InputError as e:
            event(f"{name} edited: error in {e.file}")
            check_error(e, name, new, first_line, fuzz_dir)
        else:
            event(f"{name} edited: loaded")
            check_loaded(inst)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzz_cli_main_exit_2_with_one_stderr_line(fuzz_dir, data, tmp_path_factory):
    name = data.draw(st.sampled_from(FILES), label="file")
    new, _ = data.draw(mutation((TINY / name).read_bytes(), name), label="edit")
    command = data.draw(st.sampled_from(["check", "plan"]), label="command")
    out = tmp_path_factory.mktemp("fuzz-out")
    args = ["check", fuzz_dir] if command == "check" else \
        ["plan", fuzz_dir, "--policy", "static", "--out", out, "--quiet"]
    with mutated(fuzz_dir, name, new):
        code, stdout, stderr = run_main(*args)
    assert "Traceback" not in stdout + stderr
    if code == 2:
        assert stdout == ""
        assert stderr.startswith("error: ") and stderr.endswith("\n"), repr(stderr)
        assert stderr.count("\n") == 1 and len(stderr.splitlines()) == 1, repr(stderr)
        assert files_under(out) == [], "milp plan left files behind after a failure"
    else:
        assert code in (0, 1) and stderr == "", (code, stderr)   # the edit left it valid


def test_a_bom_before_instance_toml_is_accepted_as_in_the_csvs(tiny_copy):
    from milp.instance import load_instance

    toml = tiny_copy / "instance.toml"
    toml.write_bytes(b"\xef\xbb\xbf" + toml.read_bytes())
    assert load_instance(tiny_copy).name == "tiny-3site"


def test_a_huge_bad_value_gives_a_short_line(tiny_copy):
    from milp.errors import MAX_MESSAGE, InputError
    from milp.instance import load_instance

    jobs = tiny_copy / "jobs.csv"
    lines = jobs.read_text().splitlines()
    lines[1] = lines[1].replace(",4,5", ",4" + "9" * 100_000 + "x,5")
    jobs.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as e:
        load_instance(tiny_copy)
    text = str(e.value)
    assert len(text) < MAX_MESSAGE + 80 and "characters]" in text
    assert text.startswith("jobs.csv line 2, field 'work_h'")
