#!/usr/bin/env python3
"""Check the layering of src/: no file-level import circles, and the interfaces never name the store.

Reads every Rust file under src/ (test-only modules left out), collects the paths it takes from
the crate (`use crate::...`, `use super::...`, `use self::...`, and paths written inline such as
`crate::analysis::summary::analyse(...)`), resolves each to the file that defines the item
(following `pub use` re-exports), and reports:

1. every circle of files that import from each other (a strongly connected group of more than
   one file). A module's own child files may use their parent module file (`super::Store` from
   `store/audit.rs`): that edge is namespace, not dependency, and is not counted;
2. every file under src/api/, src/dashboard/, src/cli/ (and src/demo.rs, src/main.rs) that names
   `crate::store`: interfaces reach the engine through the services;
3. every core module (protocol, randomise, endpoints, analysis, stats, design, pseudonym) that names an
   outer layer (store, service, sim, api, dashboard, cli, demo) or an I/O crate (sqlx, axum,
   tokio).

Exit status 0 when all is well, 1 otherwise. Usage: python3 scripts/check_layers.py [SRC_DIR]
"""

import os
import re
import sys
from collections import defaultdict

INTERFACES = ("api", "bus", "dashboard", "cli", "demo", "main")
CORE = ("protocol", "randomise", "endpoints", "analysis", "stats", "design", "pseudonym", "outbound", "inbound")
OUTER = ("store", "service", "sim", "api", "bus", "dashboard", "cli", "demo")
IO_CRATES = ("sqlx", "axum", "tokio")


def strip_comments_and_strings(text):
    """Blank out comments, string and char literals, keeping line structure."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4] + "  "):
            m = re.match(r"'(\\[^']*|[^\\'])'", text[i:])
            if m:
                out.append("' '")
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def remove_test_modules(text):
    """Drop `#[cfg(test)] mod name { ... }` blocks; return text and names of `#[cfg(test)] mod x;`."""
    test_children = set(re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text))
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", text)
        if not m:
            return text, test_children
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        text = text[:m.start()] + "\n" * text.count("\n", m.start(), j) + text[j:]


def expand_use_tree(tree):
    """`a::{b, c::{d, e as f}, self}` -> [['a','b'], ['a','c','d'], ['a','c','e'], ['a']]."""
    paths = []

    def split_top(inner):
        parts, depth, cur = [], 0, ""
        for ch in inner:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        parts.append(cur)
        return parts

    def walk(prefix, t):
        t = " ".join(t.split())
        if not t:
            return
        if t.endswith("}") and "{" in t:
            brace = t.index("{")
            head = [s.strip() for s in t[:brace].split("::") if s.strip()]
            for part in split_top(t[brace + 1:-1]):
                walk(prefix + head, part)
            return
        t = re.sub(r"\s+as\s+\w+$", "", t)
        segs = [s.strip() for s in t.split("::") if s.strip()]
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        paths.append(prefix + segs)

    walk([], tree)
    return paths


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path tuple -> file
        self.text = {}  # file -> cleaned text
        self.reexports = {}  # file -> {name: absolute path list}
        self.test_files = set()
        self.uses = {}  # file -> list of raw (kind, path segments)
        self._read()

    def module_of(self, rel):
        parts = rel[:-3].split("/")
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        return tuple(parts)

    def _read(self):
        raw_text = {}
        for root, _, names in os.walk(self.src):
            for name in sorted(names):
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, self.src).replace(os.sep, "/")
                with open(path, encoding="utf-8") as f:
                    raw_text[rel] = f.read()
        for rel, text in raw_text.items():
            if rel == "main.rs":
                continue
            self.files[self.module_of(rel)] = rel
        for rel, text in raw_text.items():
            clean, tests = remove_test_modules(strip_comments_and_strings(text))
            self.text[rel] = clean
            mod = self.module_of(rel) if rel != "main.rs" else ()
            for t in tests:
                child = self.files.get(mod + (t,))
                if child:
                    self.test_files.add(child)
        # Files below a test-only module are test-only too.
        changed = True
        while changed:
            changed = False
            for m, f in self.files.items():
                if f in self.test_files:
                    continue
                for k in range(1, len(m)):
                    if self.files.get(m[:k]) in self.test_files:
                        self.test_files.add(f)
                        changed = True
                        break
        for rel, clean in self.text.items():
            mod = self.module_of(rel) if rel != "main.rs" else ()
            uses, reexp = [], {}
            for m in re.finditer(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);", clean):
                public = m.group(1) is not None
                tree = m.group(2)
                for segs in expand_use_tree(tree):
                    absolute = self.absolute(mod, segs, rel)
                    if absolute is None:
                        continue
                    uses.append(absolute)
                    if public and absolute:
                        reexp[absolute[-1]] = absolute
            for m in re.finditer(r"(?<![\w:])(\w+(?:::\w+)+)", clean):
                segs = m.group(1).split("::")
                absolute = self.absolute(mod, segs, rel)
                if absolute is not None:
                    uses.append(absolute)
            self.uses[rel] = uses
            self.reexports[rel] = reexp

    def absolute(self, mod, segs, rel):
        """An absolute module path (tuple of names) for a crate-relative path, else None."""
        if not segs:
            return None
        if rel == "main.rs" and segs[0] == "rrct":
            return tuple(segs[1:])
        if segs[0] == "crate":
            return tuple(segs[1:])
        if segs[0] in ("super", "self"):
            base = list(mod)
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
            return tuple(base + segs)
        if tuple(mod) + (segs[0],) in self.files:
            # A path relative to the current module, through one of its child modules.
            return tuple(mod) + tuple(segs)
        return None

    def resolve(self, path, depth=0):
        """The file defining `path` (following re-exports) and the name taken from it."""
        for k in range(len(path), -1, -1):
            f = self.files.get(tuple(path[:k]))
            if f is None:
                continue
            if k < len(path) and depth < 8:
                target = self.reexports.get(f, {}).get(path[k])
                if target and tuple(target) != tuple(path[: k + 1]):
                    return self.resolve(list(target) + list(path[k + 1:]), depth + 1)
            return f, (path[k] if k < len(path) else "*")
        return None, None


def ancestors(crate, rel):
    mod = crate.module_of(rel)
    return {crate.files[mod[:k]] for k in range(len(mod)) if mod[:k] in crate.files}


def tarjan(nodes, edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            out.append(group)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    crate = Crate(os.path.normpath(src))
    problems = []
    edges, names = defaultdict(set), defaultdict(set)
    for rel, uses in crate.uses.items():
        if rel in crate.test_files:
            continue
        up = ancestors(crate, rel)
        for path in uses:
            target, name = crate.resolve(list(path))
            if target is None or target == rel or target in up or target in crate.test_files:
                continue
            edges[rel].add(target)
            names[(rel, target)].add(name)
    nodes = [r for r in crate.text if r not in crate.test_files]
    for group in tarjan(nodes, edges):
        if len(group) > 1:
            group = sorted(group)
            lines = [f"import circle of {len(group)} files: {', '.join(group)}"]
            for a in group:
                for b in sorted(edges[a]):
                    if b in group:
                        lines.append(f"  {a} -> {b}: {', '.join(sorted(names[(a, b)]))}")
            problems.append("\n".join(lines))
    for rel, clean in sorted(crate.text.items()):
        if rel in crate.test_files:
            continue
        top = rel.split("/")[0].removesuffix(".rs")
        for m in re.finditer(r"\b(?:crate|rrct)::(\w+)", clean):
            line = clean.count("\n", 0, m.start()) + 1
            if top in INTERFACES and m.group(1) == "store":
                problems.append(f"src/{rel}:{line}: an interface names crate::store; go through a service")
            if top in CORE and m.group(1) in OUTER:
                problems.append(f"src/{rel}:{line}: core module `{top}` names the outer layer `{m.group(1)}`")
        if top in CORE:
            for m in re.finditer(r"(?<![\w:])(" + "|".join(IO_CRATES) + r")::", clean):
                line = clean.count("\n", 0, m.start()) + 1
                problems.append(f"src/{rel}:{line}: core module `{top}` uses the I/O crate `{m.group(1)}`")
    files = len(nodes)
    if problems:
        print("\n".join(problems))
        print(f"{len(problems)} layering problem(s) in {files} files")
        return 1
    print(f"layers ok: {files} files, {sum(len(e) for e in edges.values())} file imports, no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
