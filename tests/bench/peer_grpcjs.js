// peer_grpcjs.js -- the benchmark RPC (SessionService/TouchSession over an in-memory Map) on
// @grpc/grpc-js, the independent Node implementation.   node peer_grpcjs.js PORT
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const root = path.join(__dirname, '..', '..', 'proto');
const def = protoLoader.loadSync('engbot/session/v1/session.proto', {
  includeDirs: [root, '/usr/include'], longs: String, defaults: false,
});
const pkg = grpc.loadPackageDefinition(def).engbot.session.v1;
const table = new Map();
let now = 0;

function touchSession(call, cb) {
  const id = call.request.chatId;
  let e = table.get(id);
  let created = false;
  if (!e) {
    e = { userId: '0', created: ++now, last: 0, version: 0 };
    table.set(id, e);
    created = true;
  }
  e.userId = call.request.userId;
  e.last = ++now;
  e.version++;
  cb(null, {
    session: {
      chatId: id, userId: e.userId, createdUnixMs: e.created, lastActiveUnixMs: e.last,
      version: e.version,
    },
    created,
  });
}

const server = new grpc.Server();
server.addService(pkg.SessionService.service, { touchSession });
server.bindAsync(`127.0.0.1:${process.argv[2] || 50072}`, grpc.ServerCredentials.createInsecure(),
  (err, port) => {
    if (err) throw err;
    console.error(`peer-grpcjs listening on ${port}`);
  });
