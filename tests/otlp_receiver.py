"""An OTLP/HTTP traces receiver for the tests: decodes each ExportTraceServiceRequest with
the OpenTelemetry project's own generated protobuf module (PyPI's opentelemetry-proto) and
writes one JSON line per span, with its resource and scope, to the file named on the
command line. Listens on 127.0.0.1 (port 0: any free port) and prints `listening PORT`.

Usage: python3 otlp_receiver.py OUT.jsonl [PORT]
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as svc

OUT = sys.argv[1]
LOCK = threading.Lock()


def value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind is None:
        return None
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as OTLP exporters reuse their connection.
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        req = svc.ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except Exception as e:  # a request that does not decode is the test's failure
            self.reply(400, str(e).encode())
            return
        lines = []
        for rs in req.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(json.dumps({
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "resource": resource,
                        "scope": ss.scope.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start_ns": s.start_time_unix_nano,
                        "end_ns": s.end_time_unix_nano,
                        "attributes": attrs(s.attributes),
                        "status_code": s.status.code,
                        "status_message": s.status.message,
                    }))
        with LOCK, open(OUT, "a") as f:
            for line in lines:
                f.write(line + "\n")
        self.reply(200, svc.ExportTraceServiceResponse().SerializeToString())

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
