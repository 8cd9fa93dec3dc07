#!/usr/bin/env python3
"""moto's server with one change: DynamoDB calls are applied one at a time.

moto's threaded server runs each UpdateItem / TransactWriteItems as an
unlocked read-modify-write, so concurrent conditional updates of one item can
lose writes. Real DynamoDB applies every write to an item atomically, and the
store's exactness tests rely on that guarantee. Serialising DynamoDB calls
here restores it (conservatively: table-wide rather than per item). SQS and
the rest stay concurrent, so long polls never block DynamoDB.

It also binds its port itself and prints `moto listening on HOST:PORT` once
it holds it, so with `-p 0` the OS picks a free port that no other process can
take between being chosen and being bound (devstack reads the line).

Usage: moto_server.py -H 127.0.0.1 -p PORT   (same flags as moto_server; 0: any free port)
"""
import argparse
import os
import signal
import socket
import sys
import threading

from werkzeug.serving import make_server

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
    listener = socket.create_server((args.host, args.port), backlog=128)
    port = listener.getsockname()[1]
    os.environ["MOTO_PORT"] = str(port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        args.host,
        port,
        serialising(app),
        threaded=True,
        request_handler=MotoRequestHandler,
        fd=listener.fileno(),
    )
    print(f"moto listening on {args.host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
