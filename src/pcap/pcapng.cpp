// pcapng (draft-ietf-opsawg-pcapng): blocks of [type, total length, body, total length],
// 32-bit aligned, in host byte order (the section's byte-order magic says which).
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "ksurf/error.h"
#include "ksurf/output_file.h"
#include "ksurf/pcap.h"

namespace ksurf {
namespace {

constexpr std::uint32_t kSectionHeader = 0x0A0D0D0A;
constexpr std::uint32_t kInterface = 1;
constexpr std::uint32_t kEnhancedPacket = 6;
constexpr std::uint16_t kLinktypeRaw = 101;  // the packet starts at its IP header
constexpr std::uint16_t kOptEnd = 0, kOptComment = 1, kOptShbUserAppl = 4, kOptIfTsresol = 9;

template <typename T>
void put(std::string& b, T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void pad4(std::string& b) { b.append((4 - b.size() % 4) % 4, '\0'); }

void option(std::string& b, std::uint16_t code, std::string_view value) {
    put(b, code);
    put(b, static_cast<std::uint16_t>(value.size()));
    b.append(value);
    pad4(b);
}

std::int64_t ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

}  // namespace

PcapngWriter::PcapngWriter(const std::string& path, std::uint32_t snaplen) : path_(path) {
    const int fd = open_output_file(path);
    f_ = fdopen(fd, "wb");
    if (!f_) {
        close(fd);
        fail("cannot write '{}': {}", path, std::strerror(errno));
    }
    realtime_offset_ns_ = ns(CLOCK_REALTIME) - ns(CLOCK_MONOTONIC);

    std::string shb;
    put(shb, std::uint32_t{0x1A2B3C4D});
    put(shb, std::uint16_t{1});
    put(shb, std::uint16_t{0});
    put(shb, std::int64_t{-1});  // section length not known in advance
    option(shb, kOptShbUserAppl, "ksurf");
    option(shb, kOptEnd, "");
    block(kSectionHeader, shb);

    std::string idb;
    put(idb, kLinktypeRaw);
    put(idb, std::uint16_t{0});
    put(idb, snaplen);
    option(idb, kOptIfTsresol, std::string(1, '\x09'));  // 10^-9 s
    option(idb, kOptEnd, "");
    block(kInterface, idb);
}

PcapngWriter::~PcapngWriter() {
    if (f_) std::fclose(f_);
}

void PcapngWriter::block(std::uint32_t type, const std::string& body) {
    const auto total = static_cast<std::uint32_t>(12 + body.size());
    std::string b;
    put(b, type);
    put(b, total);
    b += body;
    put(b, total);
    if (std::fwrite(b.data(), 1, b.size(), f_) != b.size()) fail("cannot write '{}': {}", path_, std::strerror(errno));
}

void PcapngWriter::write(const Event& ev) {
    if (ev.packet.empty()) return;
    const std::uint64_t t = ev.ts_ns + static_cast<std::uint64_t>(realtime_offset_ns_);
    std::string epb;
    put(epb, std::uint32_t{0});  // interface 0
    put(epb, static_cast<std::uint32_t>(t >> 32));
    put(epb, static_cast<std::uint32_t>(t));
    put(epb, static_cast<std::uint32_t>(ev.packet.size()));
    put(epb, std::max<std::uint32_t>(ev.packet_len, static_cast<std::uint32_t>(ev.packet.size())));
    epb += ev.packet;
    pad4(epb);
    option(epb, kOptComment, fmt::format("{} skb=0x{:x}", ev.probe, ev.skb));
    option(epb, kOptEnd, "");
    block(kEnhancedPacket, epb);
    written_++;
}

}  // namespace ksurf
