#!/usr/bin/python3
"""An independent reader of an evident journal, written only from docs/format.md.

Usage: read_journal.py DIR [--heads]

Prints every event of the journal in DIR as one JSON object per line, in the shape of
`evident read-all` (position, stream, version, type, schema, time, time_ns, id,
correlation_id, causation_id, command_id, metadata, data or data_base64). With --heads
it prints the stream heads instead, in the shape of `evident head`.

Every record's CRC32C is checked. On the first bad record the script prints
{"error": "corrupted", "position": N, "message": ...} on stderr and exits with 14 (the
exit code `evident` uses for corrupted). Needs only Debian's python3-lmdb and
python3-msgpack; CRC32C is computed here in pure Python.
"""

import base64
import datetime
import json
import math
import struct
import sys

import lmdb
import msgpack

# -- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven --------------

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


class Corrupted(Exception):
    def __init__(self, position, message):
        super().__init__(message)
        self.position = position


# -- helpers --------------------------------------------------------------------------

def text(s):
    """A stored string as JSON text. Stored strings may hold any bytes except where
    noted; invalid UTF-8 is shown with U+FFFD, as `evident read` does."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def format_time(time_ns):
    secs, frac = divmod(time_ns, 1_000_000_000)
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=secs)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ" % (
        t.year, t.month, t.day, t.hour, t.minute, t.second, frac)


def format_uuid(b):
    h = b.hex()
    return "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


MAX_DEPTH = 256


class NotJson(Exception):
    pass


def to_json(x, depth=0):
    """msgpack value -> JSON value, by the rules of docs/cli.md."""
    if depth > MAX_DEPTH:
        raise NotJson()
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, bytes):
        return {"$bin": base64.b64encode(x).decode()}
    if isinstance(x, msgpack.ExtType):
        return {"$ext": x.code, "$bin": base64.b64encode(x.data).decode()}
    if isinstance(x, msgpack.Timestamp):  # ext type -1, unpacked specially by msgpack
        return {"$ext": -1, "$bin": base64.b64encode(x.to_bytes()).decode()}
    if isinstance(x, list):
        return [to_json(v, depth + 1) for v in x]
    if isinstance(x, tuple):  # a map, as the pairs object_pairs_hook hands us
        out = {}
        for k, v in x:
            if isinstance(k, str):
                key = k
            else:
                key = json.dumps(to_json(k, depth + 1), separators=(",", ":"),
                                 ensure_ascii=False)
            out[key] = to_json(v, depth + 1)
        return out
    raise NotJson()


def payload_json(payload):
    """{"data": ...} when the payload is exactly one msgpack value that maps to JSON
    (strings valid UTF-8), else {"data_base64": ...}."""
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True,
                                object_pairs_hook=tuple)
        return {"data": to_json(value)}
    except Exception:  # malformed, trailing bytes, invalid UTF-8, too deep, empty
        return {"data_base64": base64.b64encode(payload).decode()}


# -- the events DB ---------------------------------------------------------------------

FIELDS = 12


def decode_event(key, value):
    if len(key) != 8:
        raise Corrupted(None, "events key is not 8 bytes")
    position = struct.unpack(">Q", key)[0]
    if len(value) < 6 or value[-5] != 0xCE:
        raise Corrupted(position, "missing checksum trailer")
    body = value[:-5]
    stored_crc = struct.unpack(">I", value[-4:])[0]
    if crc32c(body, crc32c(key)) != stored_crc:
        raise Corrupted(position, "checksum mismatch")
    try:
        rec = msgpack.unpackb(body, raw=False, unicode_errors="surrogateescape",
                              strict_map_key=True, use_list=True,
                              object_pairs_hook=list)
    except Exception as e:
        raise Corrupted(position, "body does not decode: %s" % e)
    if not isinstance(rec, list) or len(rec) != FIELDS or rec[0] != 1:
        raise Corrupted(position, "unknown record layout")
    (_, stream, version, type_, schema, time_ns, event_id, correlation_id, causation_id,
     command_id, meta, payload) = rec
    if not (isinstance(stream, str) and isinstance(type_, str)
            and isinstance(correlation_id, str) and isinstance(causation_id, str)
            and isinstance(command_id, str) and isinstance(version, int)
            and isinstance(schema, int) and isinstance(time_ns, int)
            and isinstance(event_id, bytes) and len(event_id) == 16
            and isinstance(meta, list) and isinstance(payload, bytes)):
        raise Corrupted(position, "field of the wrong type")
    metadata = {}
    for k, v in meta:
        if not isinstance(k, str) or not isinstance(v, str):
            raise Corrupted(position, "metadata entry is not str -> str")
        metadata[text(k)] = text(v)
    out = {
        "position": position,
        "stream": text(stream),
        "version": version,
        "type": text(type_),
        "schema": schema,
        "time": format_time(time_ns),
        "time_ns": time_ns,
        "id": format_uuid(event_id),
        "correlation_id": text(correlation_id),
        "causation_id": text(causation_id),
        "command_id": text(command_id),
        "metadata": metadata,
    }
    out.update(payload_json(payload))
    return out


STATES = {0: "live", 1: "soft_deleted", 2: "tombstoned"}


def decode_head(key, value):
    if len(value) != 17 or value[8] not in STATES:
        raise Corrupted(None, "malformed head record of %r" % key)
    version, state, truncate_before = struct.unpack(">QBQ", value)
    return {
        "stream": text(key.decode("utf-8", "surrogateescape")),
        "version": version,
        "state": STATES[state],
        "truncate_before": truncate_before,
    }


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 17
    path = argv[1]
    heads = "--heads" in argv[2:]
    env = lmdb.open(path, readonly=True, max_dbs=64, subdir=True)
    try:
        with env.begin() as txn:
            meta_db = env.open_db(b"meta", txn=txn, create=False)
            fmt = txn.get(b"format_version", db=meta_db)
            # Version 1 differs from 2 only in index chunks, which this reader skips.
            if fmt is None or struct.unpack(">I", fmt)[0] not in (1, 2):
                print(json.dumps({"error": "unsupported_format",
                                  "message": "format_version is not 1 or 2"}),
                      file=sys.stderr)
                return 19
            out = sys.stdout
            if heads:
                # A heads record is exact up to meta.indexed_through (or its last state
                # change); later versions are only in the log tail.
                mark_raw = txn.get(b"indexed_through", db=meta_db)
                mark = struct.unpack(">Q", mark_raw)[0] if mark_raw else 0
                result = {}
                db = env.open_db(b"heads", txn=txn, create=False)
                for key, value in txn.cursor(db=db):
                    result[bytes(key)] = decode_head(key, value)
                events = env.open_db(b"events", txn=txn, create=False)
                cur = txn.cursor(db=events)
                if cur.set_range(struct.pack(">Q", mark + 1)):
                    for key, value in cur:
                        event = decode_event(key, value)  # checks the CRC
                        raw_stream = msgpack.unpackb(
                            bytes(value[:-5]), raw=False,
                            unicode_errors="surrogateescape")[1]
                        stream = raw_stream.encode("utf-8", "surrogateescape")
                        head = result.setdefault(stream, {
                            "stream": event["stream"], "version": 0, "state": "live",
                            "truncate_before": 0})
                        head["version"] = max(head["version"], event["version"])
                for stream in sorted(result):
                    out.write(json.dumps(result[stream], ensure_ascii=False) + "\n")
                return 0
            db = env.open_db(b"events", txn=txn, create=False)
            expected = 1
            for key, value in txn.cursor(db=db):
                event = decode_event(key, value)
                if event["position"] != expected:
                    raise Corrupted(expected, "position missing from the log")
                expected += 1
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
        return 0
    except Corrupted as e:
        err = {"error": "corrupted", "message": str(e)}
        if e.position is not None:
            err["position"] = e.position
        sys.stdout.flush()
        print(json.dumps(err), file=sys.stderr)
        return 14
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
