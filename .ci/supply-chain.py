#!/usr/bin/env python3
"""Supply-chain checks for the workspace (docs/security.md, "Supply chain"). Python 3 stdlib only.

Reads `cargo metadata --format-version 1 --locked` and Cargo.lock, and fails (exit 1) when:

1. licenses: a package's `license` expression (SPDX; the legacy `/` means OR) is not satisfied by
   ALLOWED_LICENSES, or a package declares no SPDX expression at all (only a `license-file`) and has
   no entry in LICENSE_CLARIFICATIONS. Every package of the lock file is checked, dev-only and
   other-platform ones included. The table of expressions is printed.
2. bans: a BANNED crate is in the graph cargo builds for the workspace: from the workspace members
   along normal, build and dev edges (dev only from the members themselves, as `cargo test` builds
   them), every target platform, optional dependencies only when a feature turns them on. An
   optional dependency that is only named through a weak feature (`dep?/feature`) is written to
   Cargo.lock but never built (rustls-webpki's `ring?/alloc` is why `ring` is in our lock file):
   it is reported as a note, not a failure.
3. yanked: a crates.io entry of Cargo.lock whose version is yanked, per the sparse index
   (https://index.crates.io), fetched in parallel with a bounded time. An index that cannot be
   reached gives a loud WARNING naming how many crates went unchecked (exit 0; exit 1 with
   SUPPLY_CHAIN_STRICT=1), never a silent pass.

What it does not do: RustSec advisories (the advisory database is on GitHub, which this machine
cannot reach), source/registry allow-lists, duplicate-version lints.

Usage: supply-chain.py [--metadata FILE] [--lock FILE] [--index URL] [--no-yanked] | --self-test
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import tomllib  # Python 3.11+
except ImportError:  # older Pythons: the lock's packages are taken from cargo metadata instead
    tomllib = None

# Licenses every dependency may be used under (SPDX ids). An expression passes when it can be
# satisfied with these: `A OR B` needs one of them, `A AND B` both.
ALLOWED_LICENSES = {
    "0BSD",
    "Apache-2.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSL-1.0",
    "CC0-1.0",
    # webpki-roots / webpki-root-certs: the Mozilla root list as data; permissive, attribution only.
    "CDLA-Permissive-2.0",
    "ISC",
    "MIT",
    "MIT-0",
    "Unicode-3.0",
    "Unlicense",
    "Zlib",
}
# `X WITH exception` passes when X is allowed and the exception is one of these.
ALLOWED_EXCEPTIONS = {"LLVM-exception"}
# Packages without an SPDX `license` (only a `license-file`): name -> the expression a person
# read in that file. Empty today; add an entry only after reading the file.
LICENSE_CLARIFICATIONS: dict[str, str] = {}

# One crypto provider (aws-lc-rs, ../shared/DEPENDENCIES.md): ring makes rustls panic without an
# explicitly installed provider; OpenSSL would be a second TLS stack with its own advisories.
BANNED = {
    "ring": "aws-lc-rs is the only crypto provider (../shared/DEPENDENCIES.md)",
    "openssl-sys": "no OpenSSL: rustls + aws-lc-rs is the only TLS stack",
    "openssl": "no OpenSSL: rustls + aws-lc-rs is the only TLS stack",
    "native-tls": "no native-tls: rustls + aws-lc-rs is the only TLS stack",
}

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
SPARSE_INDEX = "https://index.crates.io"
INDEX_WORKERS = 16
INDEX_TIMEOUT_S = 10
INDEX_DEADLINE_S = 60


# ---------------------------------------------------------------------------------------------
# Licenses


class LicenseError(ValueError):
    pass


def _tokens(expr: str) -> list[str]:
    # Legacy crates.io syntax: "MIT/Apache-2.0" means "MIT OR Apache-2.0".
    return re.findall(r"\(|\)|[^\s()]+", expr.replace("/", " OR "))


def license_ok(expr: str, allowed=ALLOWED_LICENSES, exceptions=ALLOWED_EXCEPTIONS) -> bool:
    """True if the SPDX expression can be satisfied with `allowed`. Raises LicenseError if it
    does not parse."""
    toks = _tokens(expr)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        if pos >= len(toks):
            raise LicenseError(f"unexpected end of license expression {expr!r}")
        pos += 1
        return toks[pos - 1]

    def atom() -> bool:
        t = take()
        if t == "(":
            v = disjunction()
            if take() != ")":
                raise LicenseError(f"unbalanced parentheses in {expr!r}")
            return v
        if t.upper() in ("AND", "OR", "WITH", ")"):
            raise LicenseError(f"unexpected {t!r} in {expr!r}")
        if peek() is not None and peek().upper() == "WITH":
            take()
            exc = take()
            return t in allowed and exc in exceptions
        return t in allowed

    def conjunction() -> bool:
        v = atom()
        while peek() is not None and peek().upper() == "AND":
            take()
            v = atom() and v  # evaluate both sides (syntax errors anywhere count)
        return v

    def disjunction() -> bool:
        v = conjunction()
        while peek() is not None and peek().upper() == "OR":
            take()
            v = conjunction() or v
        return v

    if not toks:
        raise LicenseError("empty license expression")
    v = disjunction()
    if pos != len(toks):
        raise LicenseError(f"trailing {toks[pos]!r} in {expr!r}")
    return v


def check_licenses(meta: dict, out) -> list[str]:
    """Prints the license table; returns one failure line per package outside the allowlist."""
    failures = []
    table: dict[str, list[str]] = {}
    for p in sorted(meta["packages"], key=lambda p: (p["name"], p["version"])):
        who = f"{p['name']} {p['version']}"
        expr = p.get("license")
        if not expr:
            expr = LICENSE_CLARIFICATIONS.get(p["name"])
            if not expr:
                failures.append(
                    f"license: {who}: no SPDX license (license-file: {p.get('license_file')}); "
                    "read it and add it to LICENSE_CLARIFICATIONS"
                )
                table.setdefault("(none)", []).append(p["name"])
                continue
        table.setdefault(expr, []).append(p["name"])
        try:
            ok = license_ok(expr)
        except LicenseError as e:
            failures.append(f"license: {who}: {e}")
            continue
        if not ok:
            failures.append(f"license: {who}: {expr!r} is not satisfied by the allowlist")
    print(f"licenses of {len(meta['packages'])} packages:", file=out)
    for expr, names in sorted(table.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        shown = ", ".join(names[:4]) + (f", … (+{len(names) - 4})" if len(names) > 4 else "")
        print(f"  {len(names):4}  {expr}  [{shown}]", file=out)
    return failures


# ---------------------------------------------------------------------------------------------
# Banned crates


def _edge_active(parent: dict, parent_features: set[str], child_name: str, kinds: set) -> bool:
    """Whether the manifest of `parent`, with `parent_features` on, really turns on its
    dependency on package `child_name` for one of `kinds` (None = normal, "build", "dev")."""
    entries = [
        d
        for d in parent.get("dependencies", [])
        if d["name"] == child_name and d.get("kind") in kinds
    ]
    if not entries:
        # Metadata without manifest details (or a renamed registry package): be conservative.
        return True
    if any(not d.get("optional") for d in entries):
        return True
    table = parent.get("features", {})
    for d in entries:
        key = d.get("rename") or d["name"]
        for f in parent_features:
            for v in table.get(f, []):
                if v == f"dep:{key}" or v.startswith(f"{key}/"):
                    return True
        if key in parent_features and key not in table:
            return True  # implicit feature of an optional dependency (older metadata)
    return False


def check_bans(meta: dict, out) -> list[str]:
    """Failure lines for every banned crate cargo would build for the workspace."""
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    members = set(meta["workspace_members"])
    parent_of: dict[str, str | None] = {m: None for m in members}
    queue = sorted(members)
    lock_only: dict[str, set[str]] = {}
    while queue:
        cur = queue.pop()
        node = nodes.get(cur)
        if node is None:
            continue
        feats = set(node.get("features", []))
        for dep in node.get("deps", []):
            kinds = {k.get("kind") for k in dep.get("dep_kinds", [{"kind": None}])}
            if cur not in members:
                kinds.discard("dev")
            if not kinds:
                continue
            child = pkgs.get(dep["pkg"])
            if child is None:
                continue
            if not _edge_active(pkgs[cur], feats, child["name"], kinds):
                lock_only.setdefault(dep["pkg"], set()).add(pkgs[cur]["name"])
                continue
            if dep["pkg"] not in parent_of:
                parent_of[dep["pkg"]] = cur
                queue.append(dep["pkg"])

    def path(pid: str) -> str:
        chain = []
        while pid is not None:
            chain.append(f"{pkgs[pid]['name']} {pkgs[pid]['version']}")
            pid = parent_of[pid]
        return " <- ".join(chain)

    failures = []
    for pid in sorted(parent_of):
        name = pkgs[pid]["name"]
        if name in BANNED:
            failures.append(f"banned: {path(pid)}: {BANNED[name]}")
    for pid, parents in sorted(lock_only.items()):
        name = pkgs[pid]["name"]
        if name in BANNED and pid not in parent_of:
            print(
                f"bans: note: {name} {pkgs[pid]['version']} is in Cargo.lock only as an optional "
                f"dependency of {', '.join(sorted(parents))} that no enabled feature turns on "
                "(not built)",
                file=out,
            )
    print(
        f"bans: {len(parent_of)} packages built for the workspace (normal/build/dev edges, all "
        f"targets); banned: {', '.join(sorted(BANNED))}",
        file=out,
    )
    return failures


# ---------------------------------------------------------------------------------------------
# Yanked versions


def index_path(name: str) -> str:
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


_local = threading.local()
_USER_AGENT = "trailwatch-ci supply-chain check"


def _fetch(url: str) -> bytes:
    """GET `url`: https through one kept-alive connection per worker thread (hundreds of look-ups
    would otherwise cost as many TLS handshakes), anything else (file:// in the self-test)
    through urllib."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with urllib.request.urlopen(req, timeout=INDEX_TIMEOUT_S) as r:
            return r.read()
    for attempt in (1, 2):
        conn = getattr(_local, "conn", None)
        if conn is None or conn.host != parts.hostname:
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=INDEX_TIMEOUT_S)
            _local.conn = conn
        try:
            conn.request("GET", parts.path, headers={"User-Agent": _USER_AGENT})
            r = conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            _local.conn = None
            if attempt == 2:
                raise
            continue
        if r.status != 200:
            raise OSError(f"HTTP {r.status} for {url}")
        return body
    raise OSError(f"no answer for {url}")


def check_yanked(entries: list[tuple[str, str]], index: str, out) -> tuple[list[str], list[str]]:
    """(failures, unchecked) for the crates.io (name, version) entries."""
    by_name: dict[str, set[str]] = {}
    for name, version in entries:
        by_name.setdefault(name, set()).add(version)
    failures: list[str] = []
    unchecked: list[str] = []
    started = time.monotonic()
    try:
        # One probe first, so an unreachable index costs one timeout, not one per crate.
        _fetch(f"{index}/config.json")
    except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
        print(f"yanked: the index {index} cannot be reached: {e}", file=out)
        return [], [f"{n}: index unreachable" for n in sorted(by_name)]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=INDEX_WORKERS)
    futures = {pool.submit(_fetch, f"{index}/{index_path(n)}"): n for n in sorted(by_name)}
    try:
        for fut in concurrent.futures.as_completed(futures, timeout=INDEX_DEADLINE_S):
            name = futures[fut]
            try:
                body = fut.result()
            except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
                unchecked.append(f"{name}: {e}")
                continue
            known = {}
            for line in body.decode("utf-8", "replace").splitlines():
                # Only the lines of the versions we use are decoded (popular crates have hundreds).
                if any(f'"{v}"' in line for v in by_name[name]):
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    known[rec.get("vers")] = bool(rec.get("yanked"))
            for v in sorted(by_name[name]):
                if v not in known:
                    unchecked.append(f"{name} {v}: not in the index")
                elif known[v]:
                    failures.append(f"yanked: {name} {v} is yanked on crates.io; update Cargo.lock")
    except concurrent.futures.TimeoutError:
        done = {futures[f] for f in futures if f.done()}
        unchecked += [f"{n}: no answer within {INDEX_DEADLINE_S}s" for n in sorted(by_name) if n not in done]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    print(
        f"yanked: {len(entries)} crates.io entries of Cargo.lock ({len(by_name)} names) looked up "
        f"in {index} in {time.monotonic() - started:.1f}s",
        file=out,
    )
    return failures, unchecked


def lock_entries(lock_path: str, meta: dict) -> list[tuple[str, str]]:
    """The crates.io (name, version) entries of Cargo.lock (of cargo metadata, which resolves
    exactly the lock file with --locked, when tomllib is missing)."""
    if tomllib is None:
        packages = meta["packages"]
    else:
        with open(lock_path, "rb") as f:
            packages = tomllib.load(f).get("package", [])
    return [(p["name"], p["version"]) for p in packages if p.get("source") == CRATES_IO]


# ---------------------------------------------------------------------------------------------


def run(meta: dict, entries: list[tuple[str, str]] | None, index: str, out) -> tuple[list, list]:
    failures = check_licenses(meta, out)
    failures += check_bans(meta, out)
    unchecked: list[str] = []
    if entries is None:
        print("yanked: SKIPPED (--no-yanked)", file=out)
    else:
        f, unchecked = check_yanked(entries, index, out)
        failures += f
    return failures, unchecked


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metadata", help="read cargo metadata JSON from FILE instead of running cargo")
    ap.add_argument("--lock", default="Cargo.lock")
    ap.add_argument("--index", default=os.environ.get("SUPPLY_CHAIN_INDEX", SPARSE_INDEX))
    ap.add_argument("--no-yanked", action="store_true", help="skip the crates.io index look-ups")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if args.metadata:
        with open(args.metadata) as f:
            meta = json.load(f)
    else:
        meta = json.loads(
            subprocess.run(
                ["cargo", "metadata", "--format-version", "1", "--locked"],
                check=True,
                stdout=subprocess.PIPE,
            ).stdout
        )
    entries = None if args.no_yanked else lock_entries(args.lock, meta)
    failures, unchecked = run(meta, entries, args.index.rstrip("/"), sys.stdout)
    if unchecked:
        print(
            f"\nWARNING: the yanked check did NOT cover {len(unchecked)} crates "
            f"(index unreachable or incomplete); first ones:",
            file=sys.stdout,
        )
        for u in unchecked[:10]:
            print(f"WARNING:   {u}")
    if failures:
        print(f"\nsupply chain: {len(failures)} FAILURE(S):")
        for f in failures:
            print(f"  {f}")
        return 1
    if unchecked and os.environ.get("SUPPLY_CHAIN_STRICT") == "1":
        print("supply chain: FAILED (SUPPLY_CHAIN_STRICT=1 and the yanked check is incomplete)")
        return 1
    if entries is None:
        print("\nsupply chain: ok (licenses, bans); yanked check SKIPPED")
    elif unchecked:
        print(
            f"\nsupply chain: ok (licenses, bans); yanked check INCOMPLETE: {len(unchecked)} of "
            f"{len({n for n, _ in entries})} crates unchecked (see WARNING above)"
        )
    else:
        print("\nsupply chain: ok (licenses, bans, yanked)")
    return 0


# ---------------------------------------------------------------------------------------------
# Self-test: a small fake workspace with a planted bad license, a banned crate and a yanked
# version must fail naming each; the same workspace without them must pass; a weak optional
# dependency on a banned crate (written to the lock, never built) must not fail; an unreachable
# index must be reported as unchecked, not passed.


def _fake_metadata(bad: bool) -> dict:
    def pkg(name, version, license, deps=(), features=None):
        return {
            "id": f"{name}@{version}",
            "name": name,
            "version": version,
            "license": license,
            "license_file": None if license else "LICENSE.txt",
            "dependencies": [
                {"name": n, "kind": k, "optional": opt, "rename": None} for n, k, opt in deps
            ],
            "features": features or {},
        }

    app_deps = [("good", None, False), ("tls", None, False), ("testonly", "dev", False)]
    tls_deps = [("ring", None, True)]  # optional, only named by the weak feature "ring?/alloc"
    packages = [
        pkg("app", "0.1.0", "Apache-2.0", app_deps),
        pkg("good", "1.0.0", "MIT/Apache-2.0"),
        pkg("tls", "0.1.0", "ISC AND (Apache-2.0 OR ISC)", tls_deps, {"alloc": ["ring?/alloc"]}),
        pkg("ring", "0.17.8", "Apache-2.0 AND ISC"),
        pkg("testonly", "2.0.0", "Apache-2.0 WITH LLVM-exception OR MIT"),
    ]
    nodes = [
        {"id": "app@0.1.0", "features": [], "deps": [
            {"pkg": "good@1.0.0", "dep_kinds": [{"kind": None}]},
            {"pkg": "tls@0.1.0", "dep_kinds": [{"kind": None}]},
            {"pkg": "testonly@2.0.0", "dep_kinds": [{"kind": "dev"}]},
        ]},
        {"id": "good@1.0.0", "features": [], "deps": []},
        {"id": "tls@0.1.0", "features": ["alloc"], "deps": [
            {"pkg": "ring@0.17.8", "dep_kinds": [{"kind": None}]},
        ]},
        {"id": "ring@0.17.8", "features": [], "deps": []},
        {"id": "testonly@2.0.0", "features": [], "deps": []},
    ]
    if bad:
        packages.append(pkg("copyleft", "3.0.0", "GPL-3.0-only OR LGPL-2.1-or-later"))
        packages.append(pkg("nolicense", "0.1.0", None))
        packages.append(pkg("openssl-sys", "0.9.0", "MIT"))
        packages.append(pkg("devtls", "0.1.0", "MIT", [("native-tls", None, False)]))
        packages.append(pkg("native-tls", "0.2.0", "MIT OR Apache-2.0"))
        packages[1]["dependencies"].append({"name": "openssl-sys", "kind": "build", "optional": False, "rename": None})
        packages[0]["dependencies"].append({"name": "devtls", "kind": "dev", "optional": False, "rename": None})
        nodes[0]["deps"].append({"pkg": "devtls@0.1.0", "dep_kinds": [{"kind": "dev"}]})
        nodes[1]["deps"].append({"pkg": "openssl-sys@0.9.0", "dep_kinds": [{"kind": "build"}]})
        nodes += [
            {"id": "copyleft@3.0.0", "features": [], "deps": []},
            {"id": "nolicense@0.1.0", "features": [], "deps": []},
            {"id": "openssl-sys@0.9.0", "features": [], "deps": []},
            {"id": "devtls@0.1.0", "features": [], "deps": [
                {"pkg": "native-tls@0.2.0", "dep_kinds": [{"kind": None}]},
            ]},
            {"id": "native-tls@0.2.0", "features": [], "deps": []},
        ]
    return {
        "packages": packages,
        "workspace_members": ["app@0.1.0"],
        "resolve": {"nodes": nodes, "root": None},
    }


def self_test() -> int:
    import io

    # SPDX expressions.
    assert license_ok("MIT")
    assert license_ok("MIT/Apache-2.0") and license_ok("Apache-2.0 / MIT")
    assert license_ok("(MIT OR Apache-2.0) AND Unicode-3.0")
    assert license_ok("Apache-2.0 WITH LLVM-exception")
    assert not license_ok("GPL-3.0-only")
    assert not license_ok("MIT AND GPL-3.0-only")
    assert license_ok("MIT OR GPL-3.0-only")
    assert not license_ok("Apache-2.0 WITH Classpath-exception-2.0")
    for broken in ["", "MIT OR", "(MIT", "MIT)", "AND MIT"]:
        try:
            license_ok(broken)
        except LicenseError:
            continue
        raise AssertionError(f"{broken!r} parsed")

    with tempfile.TemporaryDirectory() as d:
        # A fake sparse index (file:// URLs): good 1.0.0 is fine; testonly 2.0.0 is yanked.
        def write(name, lines):
            path = os.path.join(d, index_path(name))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("\n".join(json.dumps(line) for line in lines) + "\n")

        with open(os.path.join(d, "config.json"), "w") as f:
            f.write('{"dl": "file:///nowhere"}')
        write("good", [{"name": "good", "vers": "1.0.0", "yanked": False}])
        write("testonly", [
            {"name": "testonly", "vers": "1.9.0", "yanked": False},
            {"name": "testonly", "vers": "2.0.0", "yanked": True},
        ])
        index = "file://" + d

        buf = io.StringIO()
        failures, unchecked = run(_fake_metadata(False), [("good", "1.0.0")], index, buf)
        assert failures == [] and unchecked == [], (failures, unchecked, buf.getvalue())
        assert "ring 0.17.8 is in Cargo.lock only as an optional dependency of tls" in buf.getvalue()

        buf = io.StringIO()
        failures, unchecked = run(
            _fake_metadata(True), [("good", "1.0.0"), ("testonly", "2.0.0")], index, buf
        )
        text = "\n".join(failures)
        for needle in [
            "license: copyleft 3.0.0",
            "license: nolicense 0.1.0: no SPDX license",
            "banned: openssl-sys 0.9.0 <- good 1.0.0 <- app 0.1.0",
            "banned: native-tls 0.2.0 <- devtls 0.1.0 <- app 0.1.0",
            "yanked: testonly 2.0.0",
        ]:
            assert needle in text, f"expected {needle!r} among the failures:\n{text}"
        assert len(failures) == 5, text
        assert "ring" not in text, text
        assert "licenses of 10 packages" in buf.getvalue()

        # Unreachable index: reported as unchecked, never as a pass.
        buf = io.StringIO()
        failures, unchecked = run(
            _fake_metadata(False), [("good", "1.0.0")], "file://" + d + "/missing", buf
        )
        assert failures == [] and len(unchecked) == 1 and unchecked[0].startswith("good"), unchecked

    print("supply-chain self-test: ok (bad license, missing license, banned build and dev-path "
          "crates, yanked version and unreachable index detected; weak optional dependency not "
          "flagged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
