// interop_client.js -- the gRPC interop test cases (grpc/grpc doc/interop-test-descriptions.md)
// run by an independent implementation, @grpc/grpc-js, against engbot's interop-server.
//
//   node interop_client.js --server_port=PORT [--test_case=NAME|all]
//
// Prints one line per case ("ok <case>" or "FAIL <case>: why") and exits non-zero when any
// case failed.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = a.match(/^--([^=]+)=(.*)$/);
  return m ? [m[1], m[2]] : [a, true];
}));
const host = args.server_host || '127.0.0.1';
const port = args.server_port;
const only = args.test_case || 'all';

const protoDir = args.proto_dir || '/usr/share/grpc-proto';
const def = protoLoader.loadSync(path.join(protoDir, 'grpc/testing/test.proto'), {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  includeDirs: [protoDir],
});
const pkg = grpc.loadPackageDefinition(def).grpc.testing;
const target = `${host}:${port}`;
const client = new pkg.TestService(target, grpc.credentials.createInsecure());
const unimplementedClient = new pkg.UnimplementedService(target, grpc.credentials.createInsecure());

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function deadline(ms) {
  return new Date(Date.now() + ms);
}

function zeros(n) {
  return Buffer.alloc(n);
}

function unary(fn, req, opts = {}, md = new grpc.Metadata()) {
  return new Promise((resolve, reject) => {
    const call = fn.call(client, req, md, { deadline: deadline(opts.timeout || 10000) },
      (err, resp) => (err ? reject(err) : resolve({ resp, call })));
    if (opts.onCall) opts.onCall(call);
  });
}

const cases = {
  async empty_unary() {
    const { resp } = await unary(client.EmptyCall, {});
    assert(resp && Object.keys(resp).length === 0, 'response not empty');
  },

  async large_unary() {
    const { resp } = await unary(client.UnaryCall, {
      response_type: 'COMPRESSABLE', response_size: 314159, payload: { body: zeros(271828) },
    });
    assert(resp.payload.body.length === 314159, `payload ${resp.payload.body.length} != 314159`);
    assert(resp.payload.body.every((b) => b === 0), 'payload not zeros');
  },

  async client_streaming() {
    const sizes = [27182, 8, 1828, 45904];
    const resp = await new Promise((resolve, reject) => {
      const call = client.StreamingInputCall({ deadline: deadline(10000) },
        (err, r) => (err ? reject(err) : resolve(r)));
      for (const s of sizes) call.write({ payload: { body: zeros(s) } });
      call.end();
    });
    assert(resp.aggregated_payload_size === 74922, `aggregated ${resp.aggregated_payload_size}`);
  },

  async server_streaming() {
    const sizes = [31415, 9, 2653, 58979];
    const got = [];
    await new Promise((resolve, reject) => {
      const call = client.StreamingOutputCall({
        response_parameters: sizes.map((size) => ({ size })),
      }, { deadline: deadline(10000) });
      call.on('data', (m) => got.push(m.payload.body.length));
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert(JSON.stringify(got) === JSON.stringify(sizes), `sizes ${got}`);
  },

  async ping_pong() {
    const req = [27182, 8, 1828, 45904];
    const resp = [31415, 9, 2653, 58979];
    const call = client.FullDuplexCall({ deadline: deadline(10000) });
    const next = () => new Promise((resolve, reject) => {
      const onData = (m) => { call.removeListener('error', onErr); resolve(m); };
      const onErr = (e) => { call.removeListener('data', onData); reject(e); };
      call.once('data', onData);
      call.once('error', onErr);
    });
    for (let i = 0; i < req.length; i++) {
      const p = next();
      call.write({ response_parameters: [{ size: resp[i] }], payload: { body: zeros(req[i]) } });
      const m = await p;
      assert(m.payload.body.length === resp[i], `response ${i}: ${m.payload.body.length}`);
    }
    await new Promise((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
      call.on('data', () => reject(new Error('unexpected message after half-close')));
      call.end();
    });
  },

  async empty_stream() {
    const got = [];
    await new Promise((resolve, reject) => {
      const call = client.FullDuplexCall({ deadline: deadline(10000) });
      call.on('data', (m) => got.push(m));
      call.on('error', reject);
      call.on('end', resolve);
      call.end();
    });
    assert(got.length === 0, 'got messages on an empty stream');
  },

  async timeout_on_sleeping_server() {
    const err = await new Promise((resolve) => {
      const call = client.FullDuplexCall({ deadline: deadline(1) });
      call.on('error', resolve);
      call.on('data', () => {});
      call.on('end', () => resolve(null));
      call.write({ payload: { body: zeros(27182) } });
    });
    assert(err && err.code === grpc.status.DEADLINE_EXCEEDED,
      `expected DEADLINE_EXCEEDED, got ${err && err.code}`);
  },

  async cancel_after_begin() {
    const err = await new Promise((resolve) => {
      const call = client.StreamingInputCall({ deadline: deadline(10000) },
        (e) => resolve(e));
      call.cancel();
    });
    assert(err && err.code === grpc.status.CANCELLED, `expected CANCELLED, got ${err && err.code}`);
  },

  async cancel_after_first_response() {
    const err = await new Promise((resolve) => {
      const call = client.FullDuplexCall({ deadline: deadline(10000) });
      call.on('data', () => call.cancel());
      call.on('error', resolve);
      call.on('end', () => resolve(null));
      call.write({ response_parameters: [{ size: 31415 }], payload: { body: zeros(27182) } });
    });
    assert(err && err.code === grpc.status.CANCELLED, `expected CANCELLED, got ${err && err.code}`);
  },

  async status_code_and_message() {
    const status = { code: 2, message: 'test status message' };
    const e1 = await unary(client.UnaryCall, { response_status: status }).then(() => null, (e) => e);
    assert(e1 && e1.code === 2 && e1.details === status.message,
      `unary: ${e1 && e1.code} ${e1 && e1.details}`);
    const e2 = await new Promise((resolve) => {
      const call = client.FullDuplexCall({ deadline: deadline(10000) });
      call.on('error', resolve);
      call.on('data', () => {});
      call.on('end', () => resolve(null));
      call.write({ response_status: status });
      call.end();
    });
    assert(e2 && e2.code === 2 && e2.details === status.message,
      `duplex: ${e2 && e2.code} ${e2 && e2.details}`);
  },

  async special_status_message() {
    const msg = '\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP \uD83D\uDE08\t\n';
    const e = await unary(client.UnaryCall, { response_status: { code: 2, message: msg } })
      .then(() => null, (x) => x);
    assert(e && e.code === 2 && e.details === msg, `got ${e && e.code} ${JSON.stringify(e && e.details)}`);
  },

  async custom_metadata() {
    const initVal = 'test_initial_metadata_value';
    const trailVal = Buffer.from([0xab, 0xab, 0xab]);
    const md = new grpc.Metadata();
    md.set('x-grpc-test-echo-initial', initVal);
    md.set('x-grpc-test-echo-trailing-bin', trailVal);
    // Unary.
    const got = await new Promise((resolve, reject) => {
      let initial = null;
      let trailing = null;
      const call = client.UnaryCall({ response_size: 314159, payload: { body: zeros(271828) } },
        md, { deadline: deadline(10000) }, (err) => {
          if (err) reject(err);
        });
      call.on('metadata', (m) => { initial = m; });
      call.on('status', (s) => { trailing = s.metadata; resolve({ initial, trailing }); });
    });
    assert(got.initial && got.initial.get('x-grpc-test-echo-initial')[0] === initVal, 'unary initial');
    assert(got.trailing && Buffer.compare(got.trailing.get('x-grpc-test-echo-trailing-bin')[0], trailVal) === 0,
      'unary trailing');
    // Full duplex.
    const got2 = await new Promise((resolve, reject) => {
      let initial = null;
      const call = client.FullDuplexCall(md, { deadline: deadline(10000) });
      call.on('metadata', (m) => { initial = m; });
      call.on('data', () => {});
      call.on('error', reject);
      call.on('status', (s) => resolve({ initial, trailing: s.metadata }));
      call.write({ response_parameters: [{ size: 314159 }], payload: { body: zeros(271828) } });
      call.end();
    });
    assert(got2.initial && got2.initial.get('x-grpc-test-echo-initial')[0] === initVal, 'duplex initial');
    assert(Buffer.compare(got2.trailing.get('x-grpc-test-echo-trailing-bin')[0], trailVal) === 0,
      'duplex trailing');
  },

  async unimplemented_method() {
    const e = await unary(client.UnimplementedCall, {}).then(() => null, (x) => x);
    assert(e && e.code === grpc.status.UNIMPLEMENTED, `got ${e && e.code}`);
  },

  async unimplemented_service() {
    const e = await new Promise((resolve) => {
      unimplementedClient.UnimplementedCall({}, { deadline: deadline(10000) }, (err) => resolve(err));
    });
    assert(e && e.code === grpc.status.UNIMPLEMENTED, `got ${e && e.code}`);
  },
};

(async () => {
  const names = only === 'all' ? Object.keys(cases) : only.split(',');
  let failed = 0;
  for (const n of names) {
    if (!cases[n]) {
      console.log(`FAIL ${n}: no such case`);
      failed++;
      continue;
    }
    try {
      await cases[n]();
      console.log(`ok ${n}`);
    } catch (e) {
      console.log(`FAIL ${n}: ${e.message || e}`);
      failed++;
    }
  }
  client.close();
  unimplementedClient.close();
  process.exit(failed ? 1 : 0);
})();
