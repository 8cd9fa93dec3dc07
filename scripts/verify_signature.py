#!/usr/bin/env python3
"""Verifies a received webhook with the independent `standardwebhooks` library.

Reads one JSON object on stdin: {"secret": "whsec_...", "headers": {name: value},
"body": "<exact body text>"}. Exits 0 and prints "verified" when the signature is
valid (timestamp within the library's tolerance), 1 with the reason otherwise.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook


def main() -> int:
    req = json.load(sys.stdin)
    headers = {k.lower(): v for k, v in req["headers"].items()}
    try:
        Webhook(req["secret"]).verify(req["body"], headers)
    except Exception as e:  # the library raises WebhookVerificationError
        print(f"not verified: {type(e).__name__}: {e}")
        return 1
    print("verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
