"""Stands in for a tool during --dry-run: prints the argv it was given, changes nothing.

python-on-whales builds the real command line; running it against this recorder shows the user
exactly what would run, without running it.
"""

from __future__ import annotations

import json
import sys

if __name__ == "__main__":
    print("argv:" + json.dumps(sys.argv[1:]), flush=True)
