// The one reader of BPF ring buffers: trace, graph and skb all drain their `events` map
// through it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

struct ring_buffer;

namespace ksurf {

class RingReader {
public:
    using OnRecord = std::function<void(std::span<const std::uint8_t>)>;
    // Reads the BPF_MAP_TYPE_RINGBUF map FD (the caller keeps it open), each record to ON_RECORD.
    RingReader(int fd, OnRecord on_record);
    ~RingReader();
    RingReader(const RingReader&) = delete;
    RingReader& operator=(const RingReader&) = delete;

    // Waits up to TIMEOUT_MS for records and hands over all there are; false when a signal
    // interrupted the wait.
    bool poll(int timeout_ms);

private:
    static int on_sample(void* self, void* data, std::size_t size);

    ring_buffer* rb_ = nullptr;
    OnRecord on_record_;
    bool busy_ = false;  // the last wait returned a full batch: records come faster than wake-ups pay
};

}  // namespace ksurf
