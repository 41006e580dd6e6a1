#!/usr/bin/env python3
"""Send the bad inputs of tests/data/trust/bad_input.json to a running `rrct serve` and count
how many get the answer the case expects (status, error code, the field named).

Starts the given `rrct` binary on a fresh SQLite database with the TASTE protocol (and a second
trial, `taste2`), makes the tokens the cases name with `rrct token create`, and runs the cases
in order, each with its setup steps. The integration test tests/it/trust.rs runs the same cases
(on SQLite and PostgreSQL, also checking that nothing is written); this script lets any build be
probed, e.g. an older one, to see which of the cases it got wrong.

Usage: python3 scripts/probe_bad_input.py path/to/rrct [--verbose]
"""

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    binary = sys.argv[1]
    verbose = "--verbose" in sys.argv
    cases = json.load(open(os.path.join(ROOT, "tests/data/trust/bad_input.json")))["cases"]
    work = tempfile.mkdtemp(prefix="rrct-probe-")
    protocols = os.path.join(work, "protocols")
    os.mkdir(protocols)
    taste = open(os.path.join(ROOT, "protocols/taste.toml")).read()
    open(os.path.join(protocols, "taste.toml"), "w").write(taste)
    open(os.path.join(protocols, "taste2.toml"), "w").write(
        taste.replace('id = "taste"', 'id = "taste2"', 1)
    )
    db = "sqlite://" + os.path.join(work, "probe.db")
    env = dict(os.environ, RUST_LOG="error", RRCT_SEED_KEY="5eed" * 16, RRCT_MASTER_SEED="probe")
    server = subprocess.Popen(
        [binary, "serve", "--database", db, "--protocols", protocols, "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
    )
    try:
        line = server.stdout.readline().strip()
        base = "http://" + line.removeprefix("listening on ")
        tokens = {}

        def token(spec):
            if spec == "none":
                return None
            if spec == "guess":
                return "rrct_" + "0" * 64
            if spec not in tokens:
                role, _, scope = spec.partition("@")
                trial, _, site = scope.partition("/")
                args = [binary, "token", "create", "--database", db, "--role", role]
                if role == "source":
                    # `source@ID`: a feed bound to source ID (TASTE's population register by
                    # default); builds before sources were declared take no --source.
                    args += ["--source", scope or "population_register"]
                    trial = site = ""
                if trial:
                    args += ["--trial", trial]
                if site:
                    args += ["--site", site]
                out = subprocess.run(args, capture_output=True, text=True, env=env)
                if out.returncode != 0 and role == "source":
                    args = args[: args.index("--source")]
                    out = subprocess.run(args, capture_output=True, text=True, env=env)
                if out.returncode != 0 and role == "source":
                    # A build without the `source` role: its unscoped register token was what
                    # sent events for any subject.
                    args[args.index("source")] = "register"
                    out = subprocess.run(args, capture_output=True, text=True, env=env)
                tokens[spec] = out.stdout.strip()
            return tokens[spec]

        today = datetime.date.today()

        def fill(text):
            def one(m):
                name = m.group(1)
                if name.startswith("token:"):
                    return token(name[6:])
                if name.startswith("today"):
                    days = int(name[5:] or 0)
                    return str(today + datetime.timedelta(days=days))
                return m.group(0)
            return re.sub(r"\{([^{}]+)\}", one, text)

        def fill_json(v):
            if isinstance(v, str):
                return fill(v)
            if isinstance(v, list):
                return [fill_json(i) for i in v]
            if isinstance(v, dict):
                return {k: fill_json(i) for k, i in v.items()}
            return v

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args):
                return None

        opener = urllib.request.build_opener(NoRedirect)

        def send(r):
            headers = dict(r.get("headers", {}))
            t = token(r["token"])
            if t:
                headers["Authorization"] = "Bearer " + t
            data = None
            if "body" in r:
                data = json.dumps(fill_json(r["body"])).encode()
                headers["Content-Type"] = "application/json"
            elif "raw" in r:
                data = fill(r["raw"]).encode()
                headers["Content-Type"] = "application/json"
            elif "form" in r:
                data = fill(r["form"]).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            req = urllib.request.Request(base + fill(r["path"]), data=data, method=r["method"], headers=headers)
            try:
                with opener.open(req, timeout=30) as resp:
                    status, text = resp.status, resp.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as e:
                status, text = e.code, e.read().decode("utf-8", "replace")
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            return status, body

        right = 0
        for case in cases:
            for step in case.get("steps", []):
                for _ in range(step.get("repeat", 1)):
                    send(step)
            status, body = send(case["request"])
            expect = case["expect"]
            err = (body or {}).get("error", {}) if isinstance(body, dict) else {}
            fields = [e.get("field") for k in ("fields", "rows") for e in (err.get(k) or [])]
            ok = status == expect["status"]
            ok = ok and ("code" not in expect or err.get("code") == expect["code"])
            ok = ok and ("field" not in expect or expect["field"] in fields)
            ok = ok and not (expect.get("no_record_id") and "record_id" in err)
            right += ok
            if verbose or not ok:
                print(f"{'ok  ' if ok else 'WRONG'} [{case['item']}] {case['name']}: {status} {err.get('code', '')}")
        print(f"{len(cases)} cases, {right} answered as expected, {len(cases) - right} wrong")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
