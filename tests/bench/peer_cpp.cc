// peer_cpp.cc -- the benchmark RPC (SessionService/TouchSession over an in-memory map under
// one mutex) on gRPC C++ 1.51 (Debian libgrpc++-dev), completion-queue (async) API with one
// queue and one thread per CPU -- the faster of the C++ APIs in notes/peer-band.md.
//   peer-cpp PORT [THREADS]
#include <grpcpp/grpcpp.h>

#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engbot/session/v1/session.grpc.pb.h"

using engbot::session::v1::SessionService;
using engbot::session::v1::TouchSessionRequest;
using engbot::session::v1::TouchSessionResponse;

struct Entry {
  int64_t user_id = 0, created = 0, last = 0;
  uint64_t version = 0;
};

static std::mutex mu;
static std::unordered_map<int64_t, Entry> table;
static int64_t now_ms;

class Call {
 public:
  Call(SessionService::AsyncService* svc, grpc::ServerCompletionQueue* cq)
      : svc_(svc), cq_(cq), responder_(&ctx_) {
    svc_->RequestTouchSession(&ctx_, &req_, &responder_, cq_, cq_, this);
  }
  void Proceed(bool ok) {
    if (done_ || !ok) {
      delete this;
      return;
    }
    new Call(svc_, cq_);
    TouchSessionResponse resp;
    {
      std::lock_guard<std::mutex> g(mu);
      auto [it, created] = table.try_emplace(req_.chat_id());
      Entry& e = it->second;
      if (created) e.created = ++now_ms;
      e.user_id = req_.user_id();
      e.last = ++now_ms;
      e.version++;
      auto* s = resp.mutable_session();
      s->set_chat_id(req_.chat_id());
      s->set_user_id(e.user_id);
      s->set_created_unix_ms(e.created);
      s->set_last_active_unix_ms(e.last);
      s->set_version(e.version);
      resp.set_created(created);
    }
    done_ = true;
    responder_.Finish(resp, grpc::Status::OK, this);
  }

 private:
  SessionService::AsyncService* svc_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  TouchSessionRequest req_;
  grpc::ServerAsyncResponseWriter<TouchSessionResponse> responder_;
  bool done_ = false;
};

int main(int argc, char** argv) {
  std::string addr = std::string("127.0.0.1:") + (argc > 1 ? argv[1] : "50071");
  int nthreads = argc > 2 ? atoi(argv[2]) : (int)std::thread::hardware_concurrency();
  SessionService::AsyncService svc;
  grpc::ServerBuilder b;
  b.AddListeningPort(addr, grpc::InsecureServerCredentials());
  b.RegisterService(&svc);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (int i = 0; i < nthreads; i++) cqs.push_back(b.AddCompletionQueue());
  auto server = b.BuildAndStart();
  fprintf(stderr, "peer-cpp listening on %s with %d threads\n", addr.c_str(), nthreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < nthreads; i++) {
    threads.emplace_back([&svc, cq = cqs[i].get()] {
      for (int k = 0; k < 16; k++) new Call(&svc, cq);
      void* tag;
      bool ok;
      while (cq->Next(&tag, &ok)) static_cast<Call*>(tag)->Proceed(ok);
    });
  }
  for (auto& t : threads) t.join();
}
