// peer_grpcjs.js -- the benchmark RPCs on @grpc/grpc-js, the independent Node implementation;
// the same RPCs as peer_cpp.cc:
//   SessionService/TouchSession  an in-memory Map of sessions
//   CacheService/Resolve         a lookup by id in a Map of entries (made on demand)
//   QueueService/Enqueue         append to an in-memory lane, ids increasing
//   node peer_grpcjs.js PORT
'use strict';
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const path = require('path');

const root = path.join(__dirname, '..', '..', 'proto');
const load = (f) => grpc.loadPackageDefinition(protoLoader.loadSync(f, {
  includeDirs: [root, '/usr/include'], longs: String, enums: String, defaults: false,
}));
const s1 = load('engbot/session/v1/session.proto').engbot.session.v1;
const c1 = load('engbot/cache/v1/cache.proto').engbot.cache.v1;
const q1 = load('engbot/queue/v1/queue.proto').engbot.queue.v1;

const sessions = new Map();
const entries = new Map();
const lanes = new Map();
let now = 0;
let nextJob = 0;

function touchSession(call, cb) {
  const id = call.request.chatId;
  let e = sessions.get(id);
  let created = false;
  if (!e) {
    e = { userId: '0', created: ++now, last: 0, version: 0 };
    sessions.set(id, e);
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

function resolve(call, cb) {
  const id = call.request.id;
  let e = entries.get(id);
  if (!e) {
    e = {
      id, name: 'Gearbox-GB1-BOM.csv', path: 'Mechanical/Gearbox/Gearbox-GB1-BOM.csv',
      kind: 'ENTRY_KIND_FILE', size: 371, mtimeUnixMs: 1764441600000, contentType: 'text/csv',
      parentId: 'abcdefgh',
    };
    entries.set(id, e);
  }
  cb(null, { entry: e });
}

function enqueue(call, cb) {
  const r = call.request;
  let lane = lanes.get(r.laneKey);
  if (!lane) {
    lane = [];
    lanes.set(r.laneKey, lane);
  }
  nextJob++;
  lane.push({
    id: nextJob, laneKey: r.laneKey, laneKind: r.laneKind, method: r.method, payload: r.payload,
    dedupeKey: r.dedupeKey, state: 'JOB_STATE_QUEUED',
  });
  if (lane.length > 1000) lane.shift(); // bounded, like the real queue
  cb(null, { id: nextJob, state: 'JOB_STATE_QUEUED', position: lane.length - 1 });
}

const server = new grpc.Server();
server.addService(s1.SessionService.service, { touchSession });
server.addService(c1.CacheService.service, { resolve });
server.addService(q1.QueueService.service, { enqueue });
server.bindAsync(`127.0.0.1:${process.argv[2] || 50072}`, grpc.ServerCredentials.createInsecure(),
  (err, port) => {
    if (err) throw err;
    console.error(`peer-grpcjs listening on ${port}`);
  });
