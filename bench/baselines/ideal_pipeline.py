"""The "ideal pipeline": a minimal straight-line secure delivery, two processes on loopback.

Provider: SQLite read -> project 3 of 6 fields (in Python) -> protobuf batch -> SealedBox
to the consumer's X25519 key -> Ed25519 over header || ciphertext -> gRPC stream.
Consumer: receive -> verify -> decrypt -> parse -> insert into SQLite, one transaction per
envelope. Its shape is that of ``shared/reference/ideal_pipeline.py`` (about 120k records/s
on 2 cores there); this copy builds its protobuf types at run time, so it needs no codegen,
and it reads the same rows the product delivers.
"""

from __future__ import annotations

import operator
import sqlite3
import time
from concurrent import futures
from typing import Any

from bench.workspace import FIELDS, row

PROJECTED = ("id", "value", "payload")
SERVICE = "benchideal.Provider"
CHUNK = 100_000  # rows built in memory at a time: bounded memory, untimed building
OPTIONS = [("grpc.max_send_message_length", 64 << 20),
           ("grpc.max_receive_message_length", 64 << 20)]


def messages() -> dict[str, Any]:
    """ProjRec, ProjBatch, SubscribeReq, KeyReq, KeyResp, Envelope, built without protoc."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    spec = {
        "ProjRec": [("id", F.TYPE_INT64), ("value", F.TYPE_DOUBLE), ("payload", F.TYPE_STRING)],
        "ProjBatch": [("records", ".benchideal.ProjRec")],
        "SubscribeReq": [("consumer_pk", F.TYPE_BYTES), ("batch", F.TYPE_INT32),
                         ("rows", F.TYPE_INT64)],
        "KeyReq": [],
        "KeyResp": [("verify_key", F.TYPE_BYTES)],
        "Envelope": [("contract_id", F.TYPE_STRING), ("seq", F.TYPE_UINT64),
                     ("nrec", F.TYPE_UINT32), ("ciphertext", F.TYPE_BYTES),
                     ("signature", F.TYPE_BYTES)],
    }
    proto = descriptor_pb2.FileDescriptorProto(name="benchideal.proto", package="benchideal",
                                               syntax="proto3")
    for name, fields in spec.items():
        message = proto.message_type.add(name=name)
        for number, (field, kind) in enumerate(fields, start=1):
            if isinstance(kind, str):
                message.field.add(name=field, number=number, type=F.TYPE_MESSAGE,
                                  type_name=kind, label=F.LABEL_REPEATED)
            else:
                message.field.add(name=field, number=number, type=kind, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"benchideal.{name}"))
            for name in spec}


def build_source(path: str, n: int) -> float:
    """The rows in a plain SQLite table ``t`` by ``executemany``, in one transaction as the
    product imports; returns the seconds of ``executemany`` and the commit alone (the rows
    are built in memory first, a chunk at a time, untimed)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("DROP TABLE IF EXISTS t")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ts INTEGER, sensor TEXT, value REAL, "
                 "category TEXT, payload TEXT)")
    conn.execute("BEGIN")
    seconds = 0.0
    for start in range(0, n, CHUNK):
        batch = list(map(row, range(start, min(n, start + CHUNK))))
        clock = time.perf_counter()
        conn.executemany("INSERT INTO t VALUES (?,?,?,?,?,?)", batch)
        seconds += time.perf_counter() - clock
    clock = time.perf_counter()
    conn.execute("COMMIT")
    seconds += time.perf_counter() - clock
    conn.close()
    return seconds


def _header(contract_id: str, seq: int, nrec: int) -> bytes:
    return f"{contract_id}|{seq}|{nrec}|".encode()


def provider_main(port: int, source: str) -> None:
    import grpc
    from nacl.public import PublicKey, SealedBox
    from nacl.signing import SigningKey

    m = messages()
    key = SigningKey.generate()
    project = operator.itemgetter(*[FIELDS.index(f) for f in PROJECTED])

    def get_key(request: Any, context: Any) -> Any:
        return m["KeyResp"](verify_key=bytes(key.verify_key))

    def subscribe(request: Any, context: Any) -> Any:
        box = SealedBox(PublicKey(request.consumer_pk))
        conn = sqlite3.connect(source, check_same_thread=False)
        cursor = conn.execute(f"SELECT {', '.join(FIELDS)} FROM t ORDER BY id LIMIT ?",
                              (request.rows,))
        seq = 0
        try:
            while batch := cursor.fetchmany(request.batch or 1000):
                message = m["ProjBatch"]()
                add = message.records.add
                for i, v, p in map(project, batch):
                    add(id=i, value=v, payload=p)
                ciphertext = box.encrypt(message.SerializeToString())
                signature = key.sign(_header("contract-42", seq, len(batch)) + ciphertext
                                     ).signature
                yield m["Envelope"](contract_id="contract-42", seq=seq, nrec=len(batch),
                                    ciphertext=ciphertext, signature=signature)
                seq += 1
        finally:
            conn.close()

    handlers = {
        "GetKey": grpc.unary_unary_rpc_method_handler(
            get_key, request_deserializer=m["KeyReq"].FromString,
            response_serializer=m["KeyResp"].SerializeToString),
        "Subscribe": grpc.unary_stream_rpc_method_handler(
            subscribe, request_deserializer=m["SubscribeReq"].FromString,
            response_serializer=m["Envelope"].SerializeToString),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=OPTIONS)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def consumer_main(port: int, dest: str, rows: int) -> dict[str, Any]:
    import grpc
    from nacl.public import PrivateKey, SealedBox
    from nacl.signing import VerifyKey

    from bench.worker import peak_rss_kb, ready

    m = messages()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS)
    grpc.channel_ready_future(channel).result(timeout=20)
    get_key = channel.unary_unary(f"/{SERVICE}/GetKey",
                                  request_serializer=m["KeyReq"].SerializeToString,
                                  response_deserializer=m["KeyResp"].FromString)
    subscribe = channel.unary_stream(f"/{SERVICE}/Subscribe",
                                     request_serializer=m["SubscribeReq"].SerializeToString,
                                     response_deserializer=m["Envelope"].FromString)
    verify_key = VerifyKey(get_key(m["KeyReq"]()).verify_key)
    private = PrivateKey.generate()
    box = SealedBox(private)
    db = sqlite3.connect(dest)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("DROP TABLE IF EXISTS t")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, value REAL, payload TEXT)")
    db.commit()
    ready()
    started, clock = time.time(), time.perf_counter()
    records = wire = 0
    for envelope in subscribe(m["SubscribeReq"](consumer_pk=bytes(private.public_key),
                                                batch=1000, rows=rows)):
        ciphertext = envelope.ciphertext
        verify_key.verify(_header(envelope.contract_id, envelope.seq, envelope.nrec)
                          + ciphertext, envelope.signature)
        batch = m["ProjBatch"].FromString(box.decrypt(ciphertext))
        got = [(r.id, r.value, r.payload) for r in batch.records]
        with db:
            db.executemany("INSERT INTO t VALUES (?,?,?)", got)
        records += len(got)
        wire += len(ciphertext)
    seconds = time.perf_counter() - clock
    stored = db.execute("SELECT count(*) FROM t").fetchone()[0]
    db.close()
    channel.close()
    if stored != records:
        raise RuntimeError(f"the ideal pipeline stored {stored} of {records} records")
    return {"rows": records, "seconds": seconds, "wire_bytes": wire,
            "started": started, "ended": started + seconds, "peak_rss_kb": peak_rss_kb()}
