"""A real OTLP/HTTP traces receiver on 127.0.0.1 for the tests: decodes every POSTed body
with the reference protobuf classes (opentelemetry-proto) and keeps the spans.

mode "ok" answers 200 with an empty ExportTraceServiceResponse; "hang" reads the request and
never answers (until stopped); "error" answers 503."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Receiver:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.spans: list[Any] = []
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.posts = 0
        self._release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.posts += 1
                if owner.mode == "hang":
                    owner._release.wait(30)
                    return
                if owner.mode == "error":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                msg = ExportTraceServiceRequest.FromString(body)
                owner.requests.append(msg)
                owner.content_types.append(self.headers["Content-Type"])
                for rs in msg.resource_spans:
                    for ss in rs.scope_spans:
                        owner.spans.extend(ss.spans)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_spans(self, n: int, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.spans) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.spans)


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = v.string_value if v.HasField("string_value") else v.int_value
    return out
