#!/usr/bin/env python3
"""A minimal Confluent-compatible Schema Registry for the local stack.

No real Schema Registry can be installed on the machines this project is built on (Confluent's
and Apicurio's ship as Java artifacts outside the reachable registries; karapace is not on PyPI),
so this stand-in serves the subset of the Confluent REST API that eda and its load generator use,
with the same paths, media type, ids and error codes:

  POST /subjects/{subject}/versions      register a schema, answer {"id": N} (same schema, same id)
  POST /subjects/{subject}               look a schema up in a subject
  GET  /schemas/ids/{id}                 {"schema": "..."}; 404 with error_code 40403 if unknown
  GET  /schemas/ids/{id}/subjects
  GET  /subjects                         list of subjects
  GET  /subjects/{subject}/versions      list of versions; 404 / 40401 if unknown
  GET  /subjects/{subject}/versions/{v}  {"subject", "version", "id", "schema"}; v may be "latest"
  GET  /config                           {"compatibilityLevel": "NONE"}

Schemas are kept in memory. Compatibility is not checked. docker-compose.yml runs Confluent's real
registry on the same port for users who have Docker.

Usage: schema_registry.py [--host 127.0.0.1] [--port 8081]
"""

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class Registry:
    def __init__(self):
        self.lock = threading.Lock()
        self.ids = {}  # canonical schema text -> id
        self.schemas = {}  # id -> schema text as first registered
        self.subjects = {}  # subject -> list of ids, index = version - 1

    @staticmethod
    def canonical(schema):
        try:
            return json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
        except ValueError:
            return schema

    def register(self, subject, schema):
        key = self.canonical(schema)
        with self.lock:
            schema_id = self.ids.get(key)
            if schema_id is None:
                schema_id = len(self.schemas) + 1
                self.ids[key] = schema_id
                self.schemas[schema_id] = schema
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def lookup(self, subject, schema):
        key = self.canonical(schema)
        with self.lock:
            schema_id = self.ids.get(key)
            versions = self.subjects.get(subject)
            if versions is None:
                return None, 40401
            if schema_id is None or schema_id not in versions:
                return None, 40403
            return {"subject": subject, "version": versions.index(schema_id) + 1,
                    "id": schema_id, "schema": self.schemas[schema_id]}, None


REGISTRY = Registry()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request, to the log file
        print("%s %s" % (self.address_string(), fmt % args), flush=True)

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", MEDIA_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.reply(status, {"error_code": code, "message": message})

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            doc = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None
        return doc.get("schema") if isinstance(doc, dict) else None

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "/config":
            return self.reply(200, {"compatibilityLevel": "NONE"})
        if path == "/subjects":
            with REGISTRY.lock:
                return self.reply(200, sorted(REGISTRY.subjects))
        m = re.fullmatch(r"/schemas/ids/(\d+)(/subjects)?", path)
        if m:
            schema_id = int(m.group(1))
            with REGISTRY.lock:
                schema = REGISTRY.schemas.get(schema_id)
                subjects = [s for s, ids in REGISTRY.subjects.items() if schema_id in ids]
            if schema is None:
                return self.error(404, 40403, "Schema %d not found" % schema_id)
            return self.reply(200, subjects if m.group(2) else {"schema": schema})
        m = re.fullmatch(r"/subjects/([^/]+)/versions(?:/(latest|\d+))?", path)
        if m:
            subject, version = m.group(1), m.group(2)
            with REGISTRY.lock:
                versions = list(REGISTRY.subjects.get(subject, []))
            if not versions:
                return self.error(404, 40401, "Subject '%s' not found." % subject)
            if version is None:
                return self.reply(200, list(range(1, len(versions) + 1)))
            index = len(versions) if version == "latest" else int(version)
            if not 1 <= index <= len(versions):
                return self.error(404, 40402, "Version %s not found." % version)
            schema_id = versions[index - 1]
            return self.reply(200, {"subject": subject, "version": index, "id": schema_id,
                                    "schema": REGISTRY.schemas[schema_id]})
        self.error(404, 404, "Not found: %s" % path)

    def do_POST(self):
        path = self.path.split("?")[0].rstrip("/")
        m = re.fullmatch(r"/subjects/([^/]+)(/versions)?", path)
        if not m:
            return self.error(404, 404, "Not found: %s" % path)
        schema = self.body()
        if not isinstance(schema, str):
            return self.error(422, 42201, "Request must be a JSON object with a 'schema' string")
        try:
            json.loads(schema)
        except ValueError:
            return self.error(422, 42201, "Invalid schema: not JSON")
        if m.group(2):
            return self.reply(200, {"id": REGISTRY.register(m.group(1), schema)})
        found, code = REGISTRY.lookup(m.group(1), schema)
        if found is None:
            return self.error(404, code, "Schema not found in subject %s" % m.group(1))
        return self.reply(200, found)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print("Schema registry stand-in listening on %s:%d" % (args.host, args.port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
