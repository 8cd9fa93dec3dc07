#!/usr/bin/env python3
"""moto's server with one change: DynamoDB calls are applied one at a time.

moto's threaded server runs each UpdateItem / TransactWriteItems as an
unlocked read-modify-write, so concurrent conditional updates of one item can
lose writes. Real DynamoDB applies every write to an item atomically, and the
store's exactness tests rely on that guarantee. Serialising DynamoDB calls
here restores it (conservatively: table-wide rather than per item). SQS and
the rest stay concurrent, so long polls never block DynamoDB.

Usage: moto_server.py -H 127.0.0.1 -p PORT   (same flags as moto_server)
"""
import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

_dynamodb_lock = threading.Lock()


def serialising(app):
    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB"):
            return app(environ, start_response)
        with _dynamodb_lock:
            result = app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
        return [body]

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        serialising(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
