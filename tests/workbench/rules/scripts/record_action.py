"""Script for the ``script`` action tests: writes the payload it got to ``params.out``; sleeps if asked."""

import json
import os
import sys
import time

payload = json.loads(sys.stdin.read())
assert payload == json.loads(os.environ["WORKBENCH_ACTION"])
time.sleep(float(payload["params"].get("sleep", 0)))
with open(payload["params"]["out"], "w") as handle:
    json.dump(payload, handle)
print("recorded", payload["alert"]["id"] if payload["alert"] else payload["due_at"])
