#include "ksurf/ring_reader.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

#include "ksurf/error.h"

namespace ksurf {
namespace {

// The kernel wakes the reader for a record only when the reader had caught up with
// everything before it; a reader that keeps up is therefore woken for nearly every record,
// and at a million records a second the context switches cost more than formatting them
// (finish_task_switch was 37 % of ksurf's CPU at 870 k events/s). After a wait that
// returned this many records, the reader sleeps for kGather before waiting again: the
// records that arrive meanwhile are read in one pass, with no wake-up at all. A slow stream
// never fills a batch, so its records are read as soon as they come.
constexpr int kBusyBatch = 64;
// At 2 M records/s of 64 bytes this gathers 128 KiB, well within the 1 MiB default buffer.
constexpr auto kGather = std::chrono::microseconds(1000);

}  // namespace

RingReader::RingReader(int fd, OnRecord on_record) : on_record_(std::move(on_record)) {
    rb_ = ring_buffer__new(fd, on_sample, this, nullptr);
    if (!rb_) fail("cannot read the BPF ring buffer: {}", errno_text(errno));
}

RingReader::~RingReader() { ring_buffer__free(rb_); }

int RingReader::on_sample(void* self, void* data, std::size_t size) {
    static_cast<RingReader*>(self)->on_record_({static_cast<const std::uint8_t*>(data), size});
    return 0;
}

bool RingReader::poll(int timeout_ms) {
    if (busy_ && timeout_ms > 0) {
        std::this_thread::sleep_for(std::min<std::chrono::microseconds>(kGather, std::chrono::milliseconds(timeout_ms)));
        timeout_ms = 0;  // the records gathered are there now; a wait could only add latency
    }
    const int n = ring_buffer__poll(rb_, timeout_ms);
    if (n == -EINTR) return false;
    if (n < 0) fail("reading the BPF ring buffer: {}", errno_text(n));
    busy_ = n >= kBusyBatch;
    return true;
}

}  // namespace ksurf
