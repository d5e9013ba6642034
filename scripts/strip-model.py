#!/usr/bin/env python3
"""Copy a botocore service model into crates/wire/models/, without documentation.

Usage: scripts/strip-model.py sqs 2012-11-05
With --check, exit 1 when the committed copy differs from the installed botocore's.
"""
import gzip, json, os, sys

import botocore


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in ("documentation", "documentationUrl", "examples")}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    service, version = args
    src = os.path.join(os.path.dirname(botocore.__file__), "data", service, version)
    path = os.path.join(src, "service-2.json")
    opener = open
    if not os.path.exists(path):
        path, opener = path + ".gz", gzip.open
    with opener(path, "rt") as f:
        model = strip(json.load(f))
    text = json.dumps(model, indent=1, sort_keys=True) + "\n"
    dest = os.path.join(os.path.dirname(__file__), "..", "crates", "wire", "models", f"{service}.json")
    if "--check" in sys.argv:
        with open(dest) as f:
            if f.read() != text:
                print(f"{dest} differs from botocore {botocore.__version__}; rerun without --check")
                sys.exit(1)
        return
    with open(dest, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
