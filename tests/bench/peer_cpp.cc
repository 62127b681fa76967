// peer_cpp.cc -- the benchmark RPCs on gRPC C++ 1.51 (Debian libgrpc++-dev), completion-queue
// (async) API with one queue and one thread per CPU -- the faster of the C++ APIs in
// notes/peer-band.md. The same RPCs as the grpc-js peer (peer_grpcjs.js) and, for
// TouchSession, as engbot's layer benchmark server (bench_server.c):
//   SessionService/TouchSession  an in-memory map of sessions under one mutex
//   CacheService/Resolve         a lookup by id in an in-memory map of entries (made on demand)
//   QueueService/Enqueue         append to an in-memory lane under one mutex, ids increasing
//   peer-cpp PORT [THREADS]
#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engbot/cache/v1/cache.grpc.pb.h"
#include "engbot/queue/v1/queue.grpc.pb.h"
#include "engbot/session/v1/session.grpc.pb.h"

namespace s1 = engbot::session::v1;
namespace c1 = engbot::cache::v1;
namespace q1 = engbot::queue::v1;

struct Entry {
  int64_t user_id = 0, created = 0, last = 0;
  uint64_t version = 0;
};

static std::mutex mu;
static std::unordered_map<int64_t, Entry> sessions;
static std::unordered_map<std::string, c1::Entry> entries;
static std::unordered_map<int64_t, std::deque<q1::Job>> lanes;
static int64_t now_ms;
static uint64_t next_job_id;

class Tag {
 public:
  virtual ~Tag() = default;
  virtual void Proceed(bool ok) = 0;
};

// One call of a unary method: request it, handle it, finish, delete.
template <class Svc, class Req, class Resp>
class Call : public Tag {
 public:
  using RequestFn = void (Svc::*)(grpc::ServerContext*, Req*,
                                  grpc::ServerAsyncResponseWriter<Resp>*, grpc::CompletionQueue*,
                                  grpc::ServerCompletionQueue*, void*);
  using Handler = std::function<void(const Req&, Resp*)>;
  Call(Svc* svc, grpc::ServerCompletionQueue* cq, RequestFn fn, Handler h)
      : svc_(svc), cq_(cq), fn_(fn), h_(h), responder_(&ctx_) {
    (svc_->*fn_)(&ctx_, &req_, &responder_, cq_, cq_, this);
  }
  void Proceed(bool ok) override {
    if (done_ || !ok) {
      delete this;
      return;
    }
    new Call(svc_, cq_, fn_, h_);
    Resp resp;
    h_(req_, &resp);
    done_ = true;
    responder_.Finish(resp, grpc::Status::OK, this);
  }

 private:
  Svc* svc_;
  grpc::ServerCompletionQueue* cq_;
  RequestFn fn_;
  Handler h_;
  grpc::ServerContext ctx_;
  Req req_;
  grpc::ServerAsyncResponseWriter<Resp> responder_;
  bool done_ = false;
};

static void touch(const s1::TouchSessionRequest& req, s1::TouchSessionResponse* resp) {
  std::lock_guard<std::mutex> g(mu);
  auto [it, created] = sessions.try_emplace(req.chat_id());
  Entry& e = it->second;
  if (created) e.created = ++now_ms;
  e.user_id = req.user_id();
  e.last = ++now_ms;
  e.version++;
  auto* s = resp->mutable_session();
  s->set_chat_id(req.chat_id());
  s->set_user_id(e.user_id);
  s->set_created_unix_ms(e.created);
  s->set_last_active_unix_ms(e.last);
  s->set_version(e.version);
  resp->set_created(created);
}

static void resolve(const c1::ResolveRequest& req, c1::ResolveResponse* resp) {
  std::lock_guard<std::mutex> g(mu);
  auto [it, created] = entries.try_emplace(req.id());
  if (created) {
    c1::Entry& e = it->second;
    e.set_id(req.id());
    e.set_name("Gearbox-GB1-BOM.csv");
    e.set_path("Mechanical/Gearbox/Gearbox-GB1-BOM.csv");
    e.set_kind(c1::ENTRY_KIND_FILE);
    e.set_size(371);
    e.set_mtime_unix_ms(1764441600000);
    e.set_content_type("text/csv");
    e.set_parent_id("abcdefgh");
  }
  *resp->mutable_entry() = it->second;
}

static void enqueue(const q1::EnqueueRequest& req, q1::EnqueueResponse* resp) {
  std::lock_guard<std::mutex> g(mu);
  auto& lane = lanes[req.lane_key()];
  q1::Job j;
  j.set_id(++next_job_id);
  j.set_lane_key(req.lane_key());
  j.set_lane_kind(req.lane_kind());
  j.set_method(req.method());
  j.set_payload(req.payload());
  j.set_dedupe_key(req.dedupe_key());
  j.set_state(q1::JOB_STATE_QUEUED);
  lane.push_back(std::move(j));
  if (lane.size() > 1000) lane.pop_front();  // bounded, like the real queue
  resp->set_id(next_job_id);
  resp->set_state(q1::JOB_STATE_QUEUED);
  resp->set_position(static_cast<uint32_t>(lane.size() - 1));
}

int main(int argc, char** argv) {
  std::string addr = std::string("127.0.0.1:") + (argc > 1 ? argv[1] : "50071");
  int nthreads = argc > 2 ? atoi(argv[2]) : (int)std::thread::hardware_concurrency();
  s1::SessionService::AsyncService ssvc;
  c1::CacheService::AsyncService csvc;
  q1::QueueService::AsyncService qsvc;
  grpc::ServerBuilder b;
  b.AddListeningPort(addr, grpc::InsecureServerCredentials());
  b.RegisterService(&ssvc);
  b.RegisterService(&csvc);
  b.RegisterService(&qsvc);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (int i = 0; i < nthreads; i++) cqs.push_back(b.AddCompletionQueue());
  auto server = b.BuildAndStart();
  if (!server) {
    fprintf(stderr, "peer-cpp: cannot listen on %s\n", addr.c_str());
    return 1;
  }
  fprintf(stderr, "peer-cpp listening on %s with %d threads\n", addr.c_str(), nthreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < nthreads; i++) {
    threads.emplace_back([&, cq = cqs[i].get()] {
      for (int k = 0; k < 16; k++) {
        new Call<s1::SessionService::AsyncService, s1::TouchSessionRequest,
                 s1::TouchSessionResponse>(
            &ssvc, cq, &s1::SessionService::AsyncService::RequestTouchSession, touch);
        new Call<c1::CacheService::AsyncService, c1::ResolveRequest, c1::ResolveResponse>(
            &csvc, cq, &c1::CacheService::AsyncService::RequestResolve, resolve);
        new Call<q1::QueueService::AsyncService, q1::EnqueueRequest, q1::EnqueueResponse>(
            &qsvc, cq, &q1::QueueService::AsyncService::RequestEnqueue, enqueue);
      }
      void* tag;
      bool ok;
      while (cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
    });
  }
  for (auto& t : threads) t.join();
}
