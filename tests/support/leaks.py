"""Session-wide leak scan: no test secret, IP address or user agent in any log the test suite writes.

Registered from ``tests/conftest.py``. What it reads:

* every log file a child process writes: ``procs.spawn`` is wrapped (the real function still runs) so each
  ``log_path`` is recorded, and files are scanned when their process is stopped, after every test and at
  the end of the session (a test that deletes its directory is scanned before it does, at ``stop()``);
* every ``*.log`` file left under pytest's base temp directory and the session's root (scripts' LOG_DIR);
* the log records, stdout and stderr that pytest captured from in-process code, test by test.

What it looks for:

* secrets, collected where tests create them, never from a hand-kept list: every secret setting
  (``config.secret_setting_names``: SecretStr settings, API_KEYS, passwords in URLs) and its ``*_FILE``
  content in the environments given to ``tests.support.env.applied``, ``TestEnv.process_env`` and
  ``procs.spawn``, and every token made by ``tests.support.env.create_test_key``. Values shorter than
  ``MIN_SECRET_LEN`` are not secrets worth the name (``API_KEYS=k2``) and would match everywhere;
* IP addresses other than loopback, the unspecified ``0.0.0.0``/``::`` (bind notes name no one) and the
  addresses the suite gives its own namespace hosts' links (``register_own_address``). A dotted
  quad that follows a version marker (``v1.2.3.4``, ``pkg-1.2.3.4``, ``==1.2.3.4``) or runs on into more
  dotted numbers (``1.2.3.4.5``) is a version, not an address;
* user agents: the ones tests send on purpose (``TEST_USER_AGENT``, ``register_agent``) and the default ones
  of the HTTP clients the suite uses (``python-httpx/``, ``python-requests/``, ``curl/``, ``Mozilla/``).

Any hit fails the session, listed as ``file:line: kind`` (the secret's kind, never the secret itself).
Turn the scan off with ``-p no:leaks``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

TEST_USER_AGENT = "GV-Test-Caller/1.0"
MIN_SECRET_LEN = 8
_MAX_SECRET_FILE = 64 * 1024

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
# What may stand right before a dotted quad that is a version: a name and a dash or underscore, a pip
# comparison, a "v".
_VERSION_BEFORE = re.compile(r"(?:[A-Za-z][-_]|[=<>~!]=|\b[vV])$")
# Candidates only: ipaddress decides (clock times such as 12:30:45 are not addresses).
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_DEFAULT_AGENTS = re.compile(r"python-httpx/\d|python-requests/\d|\bcurl/\d|Mozilla/\d")


@dataclass(frozen=True)
class Hit:
    where: str  # file:line
    kind: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}"


def secret_names() -> set[str]:
    from geminivideo.config import Settings, secret_setting_names

    return {name.upper() for name in secret_setting_names(Settings)}


@dataclass
class LeakScanner:
    secrets: dict[str, str] = field(default_factory=dict)  # value -> kind
    agents: set[str] = field(default_factory=lambda: {TEST_USER_AGENT})
    logs: set[Path] = field(default_factory=set)
    hits: set[Hit] = field(default_factory=set)
    _names: set[str] = field(default_factory=set)
    _pattern: re.Pattern[str] | None = None
    _read: dict[Path, tuple[int, int]] = field(default_factory=dict)  # path -> (bytes, lines) scanned

    # What to look for

    def add_secret(self, kind: str, value: str | None) -> None:
        if not value or len(value) < MIN_SECRET_LEN:
            return
        for form in {value, unquote(value)}:
            if form not in self.secrets:
                self.secrets[form] = kind
                self._pattern = None

    def add_agent(self, agent: str) -> None:
        self.agents.add(agent)
        self._pattern = None

    def add_env(self, env: Mapping[str, str]) -> None:
        """Every secret in an environment: secret settings, their ``*_FILE`` content, URL passwords."""
        if not self._names:
            self._names = secret_names()
        for key, value in env.items():
            name = key.upper()
            if "://" in value:
                password = _url_password(value)
                if password:
                    self.add_secret(f"password in {name}", password)
            if name in self._names:
                if name == "API_KEYS":
                    for key_value in value.split(","):
                        self.add_secret("API_KEYS entry", key_value.strip())
                elif "://" not in value:
                    self.add_secret(name, value)
            elif name.endswith("_FILE") and name[:-5] in self._names:
                self.add_secret(f"{name[:-5]} (from {name})", _read_small(value))

    # Where to look

    def add_log(self, path: Path | None) -> None:
        if path is not None:
            self.logs.add(Path(path))

    def scan_logs(self, *, final: bool = False) -> None:
        for path in sorted(self.logs):
            self.scan_file(path, final=final)

    def scan_file(self, path: Path, *, final: bool = False) -> list[Hit]:
        """New complete lines of ``path`` since the last call (all of it at the end: ``final``)."""
        done_bytes, done_lines = self._read.get(path, (0, 0))
        try:
            with open(path, "rb") as handle:
                handle.seek(done_bytes)
                data = handle.read()
        except OSError:
            return []
        if not final:
            data = data[:data.rfind(b"\n") + 1]
        found = self.scan_text(str(path), data.decode("utf-8", errors="replace"), first_line=done_lines + 1)
        self._read[path] = (done_bytes + len(data), done_lines + data.count(b"\n"))
        return found

    def scan_text(self, where: str, text: str, *, first_line: int = 1) -> list[Hit]:
        found = [Hit(f"{where}:{number}", kind)
                 for number, line in enumerate(text.splitlines(), start=first_line)
                 for kind in self.kinds(line)]
        self.hits.update(found)
        return found

    # One line

    def kinds(self, line: str) -> list[str]:
        """What ``line`` leaks, by kind: secret kinds, "IP address", "user agent"."""
        kinds = []
        if self._pattern is None:
            values = sorted([*self.secrets, *self.agents], key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None
        if self._pattern is not None:
            for match in self._pattern.finditer(line):
                kinds.append(self.secrets.get(match.group(0), "user agent"))
        if _DEFAULT_AGENTS.search(line):
            kinds.append("user agent")
        if any(True for _ in addresses(line)):
            kinds.append("IP address")
        return sorted(set(kinds))


# Addresses of the test's own machinery (the veth ends of tests/support/netns.py's hosts, where Redis and the
# object store answer them): infrastructure the suite set up, named by Celery's banner, not anyone's address.
_OWN_ADDRESSES: set[str] = set()


# Each form of address: its pattern, its parser, whether a version number (``pkg-1.2.3.4``) can look like it.
_ADDRESS_FORMS: tuple[tuple[re.Pattern[str], Callable[[str], ipaddress.IPv4Address | ipaddress.IPv6Address], bool],
                      ...] = ((_IPV4, ipaddress.IPv4Address, True), (_IPV6, ipaddress.IPv6Address, False))


def register_own_address(address: str) -> None:
    _OWN_ADDRESSES.add(str(ipaddress.ip_address(address)))


def addresses(line: str) -> Iterable[str]:
    """Non-loopback, specified IP addresses in ``line`` that the suite did not assign to its own test network
    (versions such as ``pkg-1.2.3.4`` left out)."""
    for pattern, parse, versions_look_alike in _ADDRESS_FORMS:
        for match in pattern.finditer(line):
            if versions_look_alike and _VERSION_BEFORE.search(line, 0, match.start()):
                continue
            try:
                address = parse(match.group(0))
            except ValueError:
                continue
            if not (address.is_loopback or address.is_unspecified or str(address) in _OWN_ADDRESSES):
                yield match.group(0)


def _url_password(value: str) -> str | None:
    try:
        return urlsplit(value.strip()).password
    except ValueError:
        return None


def _read_small(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(_MAX_SECRET_FILE).rstrip("\r\n")
    except OSError:
        return None


# The session's scanner and the hooks the rest of the suite calls

SCANNER = LeakScanner()


def register_secret(kind: str, value: str | None) -> None:
    SCANNER.add_secret(kind, value)


def register_env(env: Mapping[str, str]) -> None:
    SCANNER.add_env(env)


def register_agent(agent: str) -> None:
    SCANNER.add_agent(agent)


def _instrument_procs() -> None:
    """Record every child's environment and log file; scan a log when its process is stopped."""
    from geminivideo import procs

    if getattr(procs.spawn, "_leak_scan", False):
        return
    real_spawn, real_stop = procs.spawn, procs.ManagedProcess.stop

    def spawn(name: str, argv: Any, *, env: Mapping[str, str] | None = None, log_path: Path | None = None,
              **kwargs: Any) -> Any:
        if env is not None:
            SCANNER.add_env(env)
        SCANNER.add_log(log_path)
        return real_spawn(name, argv, env=env, log_path=log_path, **kwargs)

    def stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return real_stop(self, *args, **kwargs)
        finally:
            if self.log_path is not None:
                SCANNER.scan_file(self.log_path, final=True)

    spawn._leak_scan = True  # type: ignore[attr-defined]
    procs.spawn = spawn
    procs.ManagedProcess.stop = stop  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    _instrument_procs()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, text in report.sections:
        if title.startswith("Captured "):
            SCANNER.scan_text(f"{report.nodeid} [{title}]", text)
    if report.when == "teardown":
        SCANNER.scan_logs()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)  # pytest's own; absent under -p no:tmpdir
    roots = [Path(factory.getbasetemp())] if factory is not None else []
    roots += [Path(p) for p in session.config.stash.get(EXTRA_ROOTS, [])]
    for root in roots:
        SCANNER.logs.update(p for p in Path(root).rglob("*.log") if p.is_file())
    SCANNER.scan_logs(final=True)
    if SCANNER.hits and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not SCANNER.hits:
        terminalreporter.write_line(f"leak scan: {len(SCANNER._read)} log files, {len(SCANNER.secrets)} secrets: "
                                    "no secret, IP address or user agent")
        return
    terminalreporter.section("leak scan: secrets, IP addresses or user agents in logs", red=True)
    for hit in sorted(SCANNER.hits, key=lambda h: (h.where, h.kind)):
        terminalreporter.write_line(str(hit))


EXTRA_ROOTS = pytest.StashKey[list[str]]()


def add_root(config: pytest.Config, root: Path) -> None:
    """A directory whose ``*.log`` files the end-of-session scan reads (the session's test root)."""
    config.stash.setdefault(EXTRA_ROOTS, []).append(str(root))
