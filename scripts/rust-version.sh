#!/usr/bin/env bash
# Checks that `rust-version` in Cargo.toml is the real minimum of the locked dependency graph:
# the highest `rust-version` any locked crate built for this platform declares. Exits 1, naming
# the crate that needs more, when Cargo.toml says less or more than that.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
cargo metadata --locked --format-version 1 --filter-platform "$host" | python3 -c '
import json, sys

meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
root = meta["resolve"]["root"]
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}

def version(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

# Every crate reachable from the root package (normal, build and dev dependencies).
seen, todo = set(), [root]
while todo:
    node = todo.pop()
    if node in seen:
        continue
    seen.add(node)
    todo.extend(d["pkg"] for d in nodes[node]["deps"])

declared = packages[root]["rust_version"]
needed = max(
    ((version(packages[i]["rust_version"]), packages[i]["name"], packages[i]["version"])
     for i in seen - {root} if packages[i]["rust_version"]),
    default=((0, 0, 0), "nothing", ""),
)
need = ".".join(str(x) for x in needed[0]).removesuffix(".0")
print(f"rust-version in Cargo.toml: {declared}; the locked graph needs {need} ({needed[1]} {needed[2]})")
if declared is None or version(declared) != needed[0]:
    sys.exit(f"set rust-version = \"{need}\" in Cargo.toml")
'
