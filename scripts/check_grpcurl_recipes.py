"""Extracts the checked recipes of clients/grpcurl.md and runs them against a live daemon.

A recipe is a ```sh block right after a `<!-- check: exit=N expect="text" ... -->` comment.
The documented address 127.0.0.1:50051 and sample-backend ports 18081..18084 are replaced
with the live ones (LIVE_ADDR, LIVE_BASE). Each recipe must exit with N and print every
expected text (stdout and stderr together). Exits 1 if any recipe fails or none is found.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

CHECK = re.compile(r"<!-- check: (?P<spec>.*?) -->\s*\n```sh\n(?P<code>.*?)\n```", re.S)
EXIT = re.compile(r"exit=(\d+)")
EXPECT = re.compile(r'expect="((?:[^"\\]|\\.)*)"')


def live(code: str) -> str:
    base = int(os.environ["LIVE_BASE"])
    code = code.replace("127.0.0.1:50051", os.environ["LIVE_ADDR"])
    for i in range(4):
        code = code.replace(f"127.0.0.1:{18081 + i}", f"127.0.0.1:{base + i}")
    return code


def main(path: str) -> int:
    text = open(path, encoding="utf-8").read()
    recipes = list(CHECK.finditer(text))
    if not recipes:
        print(f"no checked recipes found in {path}", file=sys.stderr)
        return 1
    failed = 0
    for n, m in enumerate(recipes, 1):
        spec, code = m.group("spec"), m.group("code")
        want_exit = int(EXIT.search(spec).group(1))
        expects = [e.replace('\\"', '"') for e in EXPECT.findall(spec)]
        line = text[: m.start()].count("\n") + 1
        run = subprocess.run(["bash", "-c", live(code)], capture_output=True, text=True, timeout=60)
        output = run.stdout + run.stderr
        problems = []
        if run.returncode != want_exit:
            problems.append(f"exit {run.returncode}, want {want_exit}")
        problems += [f"missing {e!r}" for e in expects if e not in output]
        first = code.strip().splitlines()[0]
        if problems:
            failed += 1
            print(f"FAIL {path}:{line}: {first}\n  " + "; ".join(problems) + "\n  output:\n" + "\n".join("    " + l for l in output.splitlines()[:40]))
        else:
            print(f"ok   {path}:{line}: {first}")
    print(f"{len(recipes) - failed} of {len(recipes)} grpcurl recipes passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
