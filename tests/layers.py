#!/usr/bin/env python3
"""The layering check of `make lint`: src/lib.rs declares the crate's modules
from the bottom up, and no module may import from one declared after it
(or from itself through `crate::`). Prints each upward import and exits 1
if there is any.

    tests/layers.py [SRC_DIR]
"""
import pathlib
import re
import sys

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
order = re.findall(r"^(?:pub )?mod (\w+);", (src / "lib.rs").read_text(), re.M)
rank = {m: i for i, m in enumerate(order)}


def files(module):
    """The files of a module: `name.rs`, or `name/` with its submodules."""
    single = src / f"{module}.rs"
    return [single] if single.exists() else sorted((src / module).rglob("*.rs"))


def group_heads(text, start):
    """The first name of each item of the `{...}` group opening at `start`
    (nested groups skipped as a whole)."""
    heads, depth, item = [], 0, ""
    for ch in text[start:]:
        depth += (ch == "{") - (ch == "}")
        if depth == 0 or (depth == 1 and ch == ","):
            heads += re.findall(r"^\W*(\w+)", item)
            item = ""
            if depth == 0:
                return heads
        elif depth >= 1 and not (depth == 1 and ch == "{"):
            item += ch
    return heads


def imported(text):
    """Top-level modules named after `crate::`, in `use` groups too."""
    text = re.sub(r"//[^\n]*", "", text)
    names = set(re.findall(r"\bcrate::(\w+)", text))
    for m in re.finditer(r"\bcrate::\{", text):
        names.update(group_heads(text, m.end() - 1))
    names.discard("self")
    return names


upward = []
for module in order:
    for path in files(module):
        for name in sorted(imported(path.read_text())):
            if name not in rank:
                upward.append(f"{path}: crate::{name} is not a module of src/lib.rs")
            elif rank[name] >= rank[module]:
                upward.append(f"{path}: imports {name}, declared at or above {module} in src/lib.rs")
if upward:
    print("\n".join(upward))
    print(f"layers: {len(upward)} import(s) against the order of src/lib.rs")
    sys.exit(1)
print(f"layers: {len(order)} modules, every import downward")
