"""bench_body.py -- helpers for run-rpc-bench.sh.
  bench_body.py id ADDR PATH          print the cache id of PATH (waits for cache-svc)
  bench_body.py body FILE RPC [ID]    write an h2load request body: the 5-byte gRPC frame
                                      prefix, then the serialized request of RPC"""
import struct
import sys
import time

import grpc
from engbot.cache.v1 import cache_pb2
from engbot.queue.v1 import queue_pb2
from engbot.session.v1 import session_pb2

if sys.argv[1] == "id":
    addr, path = sys.argv[2], sys.argv[3]
    for _ in range(200):
        try:
            with grpc.insecure_channel(addr) as ch:
                f = ch.unary_unary("/engbot.cache.v1.CacheService/Resolve",
                                   request_serializer=cache_pb2.ResolveRequest.SerializeToString,
                                   response_deserializer=cache_pb2.ResolveResponse.FromString)
                print(f(cache_pb2.ResolveRequest(path=path), timeout=1).entry.id)
                sys.exit(0)
        except grpc.RpcError:
            time.sleep(0.1)
    sys.exit("cache-svc did not answer")

out, rpc = sys.argv[2], sys.argv[3]
ident = sys.argv[4] if len(sys.argv) > 4 else "x"
if rpc == "touch":
    m = session_pb2.TouchSessionRequest(chat_id=1000000012345, user_id=7)
elif rpc == "resolve":
    m = cache_pb2.ResolveRequest(id=ident)
else:
    m = queue_pb2.EnqueueRequest(lane_key=1000000012345, lane_kind=queue_pb2.LANE_KIND_PRIVATE,
                                 method="sendMessage",
                                 payload=b'{"chat_id":1000000012345,"text":"hello"}')
b = m.SerializeToString()
with open(out, "wb") as f:
    f.write(b"\0" + struct.pack(">I", len(b)) + b)
