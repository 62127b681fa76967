"""The shared gRPC layer, tested through the interop server (a real process on loopback) with
independent clients: grpc-js (the interop cases), Debian's python3-grpcio and buf curl."""

import os
import shutil
import signal
import subprocess
import threading
import time
import unittest

import grpc

from engbot_test import (SRC, Proc, buf_curl, buf_path, health, http_get, metric, run,
                         status_of, unary, wait_until)
from grpc.health.v1 import health_pb2
from grpc.reflection.v1 import reflection_pb2
from grpc.testing import messages_pb2, empty_pb2
from google.protobuf import descriptor_pb2

NODE_DIR = os.path.join(SRC, "tests", "node", "node_modules")
INTEROP_CASES = [
    "empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong",
    "empty_stream", "timeout_on_sleeping_server", "cancel_after_begin",
    "cancel_after_first_response", "status_code_and_message", "special_status_message",
    "custom_metadata", "unimplemented_method", "unimplemented_service",
]


def reflect(addr, requests, alpha=False):
    """Runs one ServerReflectionInfo stream (v1 or v1alpha) and returns the responses."""
    path = ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" if alpha
            else "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    with grpc.insecure_channel(addr) as ch:
        fn = ch.stream_stream(path, request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        return list(fn(iter(requests), timeout=10))


class InteropWithGrpcJs(unittest.TestCase):
    """The standard interop cases, driven by @grpc/grpc-js (an independent implementation)."""

    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(NODE_DIR, "@grpc", "grpc-js")):
            raise unittest.SkipTest("grpc-js not installed (deploy/setup-debian.sh installs it)")
        cls.srv = Proc("interop-server")
        cls.srv.wait_serving()
        env = dict(os.environ, NODE_PATH=NODE_DIR)
        r = subprocess.run(["node", os.path.join(SRC, "tests", "interop", "interop_client.js"),
                            f"--server_port={cls.srv.grpc_port}"], capture_output=True,
                           text=True, env=env, timeout=120)
        cls.results = {}
        for line in r.stdout.splitlines():
            status, _, rest = line.partition(" ")
            name = rest.split(":")[0]
            cls.results[name] = (status, line)
        cls.output = r.stdout + r.stderr

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_every_case(self):
        for case in INTEROP_CASES:
            with self.subTest(case=case):
                self.assertIn(case, self.results, self.output)
                self.assertEqual(self.results[case][0], "ok", self.results[case][1])


class Layer(unittest.TestCase):
    def setUp(self):
        self.srv = Proc("interop-server", args=["--drain-grace=5s"])
        self.srv.wait_serving()

    def tearDown(self):
        if self.srv.alive():
            self.srv.stop()

    # ---- health ----
    def test_health_check(self):
        S = health_pb2.HealthCheckResponse
        self.assertEqual(health(self.srv.addr, ""), S.SERVING)
        self.assertEqual(health(self.srv.addr, "grpc.testing.TestService"), S.SERVING)
        self.assertEqual(health(self.srv.addr, "liveness"), S.SERVING)
        code, details = status_of(health, self.srv.addr, "no.such.Service")
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("no.such.Service", details)

    def test_health_watch_sees_not_serving_at_drain_and_ends(self):
        ch = grpc.insecure_channel(self.srv.addr)
        watch = ch.unary_stream("/grpc.health.v1.Health/Watch",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=health_pb2.HealthCheckResponse.FromString)
        stream = watch(health_pb2.HealthCheckRequest(service=""), timeout=15)
        unknown = watch(health_pb2.HealthCheckRequest(service="not.Registered"), timeout=15)
        first = next(stream)
        self.assertEqual(first.status, health_pb2.HealthCheckResponse.SERVING)
        self.assertEqual(next(unknown).status, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
        t0 = time.monotonic()
        self.srv.send_signal(signal.SIGTERM)
        second = next(stream)
        self.assertEqual(second.status, health_pb2.HealthCheckResponse.NOT_SERVING)
        with self.assertRaises(grpc.RpcError) as cm:
            next(stream)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.srv.stop(), 0)
        # Open Watch streams must not hold the drain for the whole grace period (5 s).
        self.assertLess(time.monotonic() - t0, 3)
        ch.close()

    # ---- drain ----
    def _slow_stream(self, interval_ms, results):
        ch = grpc.insecure_channel(self.srv.addr)
        fn = ch.unary_stream("/grpc.testing.TestService/StreamingOutputCall",
                             request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=messages_pb2.StreamingOutputCallResponse.FromString)
        req = messages_pb2.StreamingOutputCallRequest(response_parameters=[
            messages_pb2.ResponseParameters(size=10, interval_us=interval_ms * 1000)])
        try:
            results["msgs"] = len(list(fn(req, timeout=20)))
            results["code"] = grpc.StatusCode.OK
        except grpc.RpcError as e:
            results["code"] = e.code()
        ch.close()

    def test_drain_lets_a_call_in_flight_finish(self):
        results = {}
        t = threading.Thread(target=self._slow_stream, args=(1500, results))
        t.start()
        wait_until(lambda: (metric(self.srv.http_port, "grpc_server_started_total",
                                   {"grpc_method": "StreamingOutputCall"}) or 0) >= 1,
                   what="the call to start")
        self.srv.send_signal(signal.SIGTERM)
        # While draining, /readyz says so (the HTTP port lives until the drain ends).
        wait_until(lambda: http_get(self.srv.http_port, "/readyz")[0] == 503, timeout=2,
                   what="/readyz 503 during the drain")
        self.assertEqual(self.srv.stop(), 0)
        t.join()
        self.assertEqual(results.get("code"), grpc.StatusCode.OK)
        self.assertEqual(results.get("msgs"), 1)
        self.assertTrue(self.srv.has_log(lambda r: r.get("msg") == "gRPC server drained"))

    def test_drain_cancels_calls_past_the_grace_period(self):
        self.srv.stop()
        self.srv = Proc("interop-server", args=["--drain-grace=300ms"])
        self.srv.wait_serving()
        results = {}
        t = threading.Thread(target=self._slow_stream, args=(3000, results))
        t.start()
        wait_until(lambda: (metric(self.srv.http_port, "grpc_server_started_total",
                                   {"grpc_method": "StreamingOutputCall"}) or 0) >= 1,
                   what="the call to start")
        self.srv.send_signal(signal.SIGTERM)
        t.join(10)
        self.assertIn(results.get("code"), (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED))
        self.assertEqual(self.srv.stop(), 0)
        self.assertTrue(self.srv.has_log(lambda r: "grace period over" in r.get("msg", "")))

    # ---- limits and errors ----
    def test_oversize_request_is_resource_exhausted(self):
        req = messages_pb2.SimpleRequest(response_size=1,
                                         payload=messages_pb2.Payload(body=b"\0" * (5 << 20)))
        code, details = status_of(unary, self.srv.addr, "/grpc.testing.TestService/UnaryCall",
                                  req, messages_pb2.SimpleResponse)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)

    def test_unknown_method_and_service_answer_at_once(self):
        for path in ("/grpc.testing.TestService/NoSuchMethod", "/no.Such/Service"):
            t0 = time.monotonic()
            code, details = status_of(unary, self.srv.addr, path, empty_pb2.Empty(),
                                      empty_pb2.Empty, timeout=10)
            self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED)
            self.assertIn(path, details)
            self.assertLess(time.monotonic() - t0, 1.0)

    def test_undecodable_request_is_invalid_argument(self):
        with grpc.insecure_channel(self.srv.addr) as ch:
            fn = ch.unary_unary("/grpc.testing.TestService/UnaryCall",
                                request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
            with self.assertRaises(grpc.RpcError) as cm:
                fn(b"\xff\xff\xff\xff", timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("SimpleRequest", cm.exception.details())

    def test_echoed_status_and_message(self):
        req = messages_pb2.SimpleRequest(
            response_status=messages_pb2.EchoStatus(code=9, message="precondition: é"))
        code, details = status_of(unary, self.srv.addr, "/grpc.testing.TestService/UnaryCall",
                                  req, messages_pb2.SimpleResponse)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(details, "precondition: é")

    def test_port_in_use_fails_loudly(self):
        rc, out, err = run("interop-server", [f"--grpc-listen=127.0.0.1:{self.srv.grpc_port}",
                                              "--http-listen=127.0.0.1:0"], timeout=20)
        self.assertEqual(rc, 1)
        self.assertIn("GRPC_LISTEN", err)
        self.assertIn(f"127.0.0.1:{self.srv.grpc_port}", err)

    # ---- metrics ----
    def test_metrics_are_valid_prometheus_and_count_calls(self):
        unary(self.srv.addr, "/grpc.testing.TestService/EmptyCall", empty_pb2.Empty(),
              empty_pb2.Empty)
        status_of(unary, self.srv.addr, "/grpc.testing.TestService/UnaryCall",
                  messages_pb2.SimpleRequest(response_status=messages_pb2.EchoStatus(code=5)),
                  messages_pb2.SimpleResponse)
        labels = {"grpc_service": "grpc.testing.TestService", "grpc_method": "EmptyCall",
                  "grpc_code": "OK", "grpc_type": "unary"}
        # The layer counts a call when its status batch completes, which may be just after the
        # client saw the answer.
        wait_until(lambda: metric(self.srv.http_port, "grpc_server_handled_total", labels) == 1,
                   what="EmptyCall counted as OK")
        wait_until(lambda: metric(self.srv.http_port, "grpc_server_handled_total",
                                  {"grpc_method": "UnaryCall", "grpc_code": "NotFound"}) == 1,
                   what="UnaryCall counted as NotFound")
        self.assertEqual(metric(self.srv.http_port, "grpc_server_handling_seconds_count",
                                {"grpc_method": "EmptyCall"}), 1)
        self.assertGreater(metric(self.srv.http_port, "process_resident_memory_bytes"), 1e6)
        status, text = http_get(self.srv.http_port, "/metrics")
        self.assertEqual(status, 200)
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (Debian package prometheus)")
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_healthz_readyz(self):
        self.assertEqual(http_get(self.srv.http_port, "/healthz")[0], 200)
        self.assertEqual(http_get(self.srv.http_port, "/readyz"), (200, "ready\n"))
        self.assertEqual(http_get(self.srv.http_port, "/nope")[0], 404)


class Reflection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Proc("interop-server")
        cls.srv.wait_serving()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_list_services_v1_and_v1alpha(self):
        want = {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection", "grpc.testing.TestService"}
        for alpha in (False, True):
            r = reflect(self.srv.addr, [reflection_pb2.ServerReflectionRequest(list_services="*")],
                        alpha=alpha)
            self.assertEqual(len(r), 1)
            self.assertEqual({s.name for s in r[0].list_services_response.service}, want)

    def test_file_containing_symbol_with_dependencies_and_comments(self):
        r = reflect(self.srv.addr, [reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.testing.TestService.UnaryCall")])
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in r[0].file_descriptor_response.file_descriptor_proto]
        self.assertEqual(files[0].name, "grpc/testing/test.proto")
        self.assertEqual({f.name for f in files}, {"grpc/testing/test.proto",
                                                   "grpc/testing/empty.proto",
                                                   "grpc/testing/messages.proto"})
        svc = [s for s in files[0].service if s.name == "TestService"][0]
        m = [m for m in svc.method if m.name == "UnaryCall"][0]
        self.assertEqual(m.input_type, ".grpc.testing.SimpleRequest")
        # Source info is kept so `grpcurl describe` shows the proto comments.
        comments = [loc.leading_comments for loc in files[0].source_code_info.location]
        self.assertTrue(any("One request followed by one response" in c for c in comments))

    def test_errors_travel_inside_the_stream(self):
        r = reflect(self.srv.addr, [
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
            reflection_pb2.ServerReflectionRequest(file_by_filename="grpc/testing/empty.proto"),
            reflection_pb2.ServerReflectionRequest(all_extension_numbers_of_type="grpc.testing.Empty"),
            reflection_pb2.ServerReflectionRequest(file_by_filename="nope.proto"),
        ])
        self.assertEqual(len(r), 4)  # one answer per request, in order, stream ends OK
        self.assertEqual(r[0].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertEqual(r[1].original_request.file_by_filename, "grpc/testing/empty.proto")
        self.assertEqual(len(r[1].file_descriptor_response.file_descriptor_proto), 1)
        self.assertEqual(r[2].all_extension_numbers_response.base_type_name, "grpc.testing.Empty")
        self.assertEqual(r[3].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])

    def test_buf_curl_lists_describes_and_calls_through_reflection(self):
        if not buf_path():
            self.skipTest("buf not installed")
        rc, out, err = buf_curl(self.srv.addr, extra=["--list-services"])
        self.assertEqual(rc, 0, err)
        for s in ("grpc.testing.TestService", "grpc.health.v1.Health",
                  "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"):
            self.assertIn(s, out.split())
        rc, out, err = buf_curl(self.srv.addr, extra=["--list-methods"])
        self.assertEqual(rc, 0, err)
        self.assertIn("grpc.testing.TestService/FullDuplexCall", out)
        rc, out, err = buf_curl(self.srv.addr, "grpc.testing.TestService/UnaryCall",
                                {"responseSize": 3})
        self.assertEqual(rc, 0, err)
        self.assertIn('"body": "AAAA"', out)
        # v1alpha only, like grpcurl <= 1.8.7.
        rc, out, err = buf_curl(self.srv.addr, "grpc.health.v1.Health/Check", {"service": ""},
                                extra=["--reflect-protocol", "grpc-v1alpha"])
        self.assertEqual(rc, 0, err)
        self.assertIn("SERVING", out)


def client_check(*args, timeout=30):
    """Runs tests/common/client_check.c (engbot's own gRPC client); returns its key=value dict."""
    from engbot_test import BUILD
    r = subprocess.run([os.path.join(BUILD, "tests", "client-check")] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return dict(kv.split("=", 1) for kv in r.stdout.split())


class Client(unittest.TestCase):
    """engbot's client layer (used by the gateway) against the interop server."""

    def setUp(self):
        self.srv = Proc("interop-server")
        self.srv.wait_serving()

    def tearDown(self):
        if self.srv.alive():
            self.srv.stop()

    def test_unary_status_message_and_trailers(self):
        self.assertEqual(client_check("unary", self.srv.addr)["code"], "0")
        r = client_check("trailers", self.srv.addr)
        self.assertEqual(r["code"], "5")
        self.assertEqual(r["message"], "no_such_thing")
        self.assertEqual(r["trailer"], "abc")  # sent as request metadata, echoed as a trailer

    def test_server_stream_and_deadline(self):
        r = client_check("stream", self.srv.addr)
        self.assertEqual((r["code"], r["messages"], r["bytes"]), ("0", "3", "15"))
        r = client_check("deadline", self.srv.addr)
        self.assertEqual(r["code"], "4")  # DEADLINE_EXCEEDED
        self.assertLess(int(r["ms"]), 1500)

    def test_wait_for_ready(self):
        port = self.srv.grpc_port
        self.srv.stop()
        r = client_check("wfr", f"127.0.0.1:{port}", 3000, 0)
        self.assertEqual(r["code"], "14")  # UNAVAILABLE at once without wait-for-ready
        self.assertLess(int(r["ms"]), 1000)
        holder = {}

        def later():
            time.sleep(0.7)
            holder["p"] = Proc("interop-server", args=[f"--grpc-listen=127.0.0.1:{port}"])

        t = threading.Thread(target=later)
        t.start()
        r = client_check("wfr", f"127.0.0.1:{port}", 8000, 1)
        t.join()
        self.srv = holder["p"]
        self.assertEqual(r["code"], "0")  # queued until the server came up
        self.assertGreater(int(r["ms"]), 500)

    def test_round_robin_spreads_calls(self):
        other = Proc("interop-server")
        try:
            other.wait_serving()
            r = client_check("rr", f"ipv4:127.0.0.1:{self.srv.grpc_port},127.0.0.1:{other.grpc_port}",
                             200)
            self.assertEqual(r["ok"], "200")
            lbl = {"grpc_method": "EmptyCall", "grpc_code": "OK"}
            # A server counts a call after answering it: read both once all are counted. (The
            # first calls may all go to whichever connection was ready first.)
            wait_until(lambda: (metric(self.srv.http_port, "grpc_server_handled_total", lbl) or 0)
                       + (metric(other.http_port, "grpc_server_handled_total", lbl) or 0) == 200,
                       what="200 calls counted")
            a = metric(self.srv.http_port, "grpc_server_handled_total", lbl) or 0
            b = metric(other.http_port, "grpc_server_handled_total", lbl) or 0
            self.assertGreaterEqual(min(a, b), 60, (a, b))  # both got a fair share, not 200/0
        finally:
            other.stop()


class Settings(unittest.TestCase):
    def test_bad_value_exits_2_with_one_clear_line(self):
        rc, out, err = run("interop-server", ["--max-recv-msg=lots"])
        self.assertEqual(rc, 2)
        self.assertEqual(err.strip().count("\n"), 0)
        self.assertIn("invalid --max-recv-msg='lots'", err)
        rc, out, err = run("interop-server", [], env={"DRAIN_GRACE": "2 weeks"})
        self.assertEqual(rc, 2)
        self.assertIn("DRAIN_GRACE", err)

    def test_help_and_version(self):
        rc, out, _ = run("interop-server", ["--help"])
        self.assertEqual(rc, 0)
        for s in ("--grpc-listen", "GRPC_LISTEN", "--drain-grace", "--max-connection-age",
                  "--keepalive-time", "--max-recv-msg", "default:"):
            self.assertIn(s, out)
        rc, out, _ = run("interop-server", ["--version"])
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("interop-server "))


if __name__ == "__main__":
    unittest.main()
