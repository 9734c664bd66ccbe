#include "ksurf/output_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "ksurf/error.h"

namespace ksurf {
namespace {

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }

private:
    int fd_;
};

// PATH's directory, opened (following its links: the user chose it), and PATH's last
// component, which is never followed.
struct Place {
    Fd dir;
    std::string name;
};

Place place_of(const std::string& path) {
    const auto slash = path.rfind('/');
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    if (name.empty() || name == "." || name == "..") fail("cannot write {}: not a file name", printable(path));
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    const int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("cannot write {}: {}", printable(path), errno_text(errno));
    return {Fd(fd), name};
}

constexpr const char* kSymlink = "it is a symbolic link, which ksurf does not follow";

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
    fail("cannot write {}: {}", printable(path), why);
}

void write_all(int fd, std::string_view text, const std::string& path) {
    for (std::size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("cannot write {}: {}", printable(path), errno_text(n < 0 ? errno : EIO));
        done += static_cast<std::size_t>(n);
    }
}

void close_checked(Fd& fd, const std::string& path) {
    if (::close(fd.release()) != 0) fail("cannot write {}: {}", printable(path), errno_text(errno));
}

// The entry at P, without following it; nullopt when there is none.
std::optional<struct stat> entry(const Place& p, const std::string& path) {
    struct stat st {};
    if (::fstatat(p.dir.get(), p.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return st;
    if (errno == ENOENT) return std::nullopt;
    fail("cannot write {}: {}", printable(path), errno_text(errno));
}

}  // namespace

std::optional<std::string> refuse_existing(const struct stat& st, uid_t owner, bool in_place) {
    if (S_ISLNK(st.st_mode)) return kSymlink;
    if (!S_ISREG(st.st_mode)) return "it exists and is not a regular file";
    if (st.st_uid != owner)
        return fmt::format("it exists and belongs to uid {}, not to uid {} that ksurf runs for", st.st_uid, owner);
    if (in_place && st.st_nlink > 1)
        return fmt::format("it has {} hard links, and writing it would change the other names too", st.st_nlink);
    return std::nullopt;
}

int open_output_file(const std::string& path) {
    const Place p = place_of(path);
    constexpr int kFlags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC;
    // O_EXCL: whatever is at the name, a dangling symlink included, is not written through.
    if (int fd = ::openat(p.dir.get(), p.name.c_str(), kFlags | O_CREAT | O_EXCL, 0600); fd >= 0) return fd;
    if (errno != EEXIST) fail("cannot write {}: {}", printable(path), errno_text(errno));

    const auto before = entry(p, path);
    if (!before) fail("cannot write {}: it was removed while ksurf opened it", printable(path));
    if (auto why = refuse_existing(*before, getuid(), true)) refuse(path, *why);
    // O_NONBLOCK: if a FIFO took the name since, opening it must not hang; the check below
    // then refuses it.
    Fd fd(::openat(p.dir.get(), p.name.c_str(), kFlags | O_NONBLOCK));
    if (fd.get() < 0)
        refuse(path, errno == ELOOP ? kSymlink : errno_text(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail("cannot write {}: {}", printable(path), errno_text(errno));
    if (st.st_dev != before->st_dev || st.st_ino != before->st_ino)
        fail("cannot write {}: it was replaced while ksurf opened it", printable(path));
    if (auto why = refuse_existing(st, getuid(), true)) refuse(path, *why);
    // The mode too: packets and scripts are private, whatever the file allowed before.
    if (::ftruncate(fd.get(), 0) != 0 || ::fchmod(fd.get(), 0600) != 0 || ::fcntl(fd.get(), F_SETFL, 0) != 0)
        fail("cannot write {}: {}", printable(path), errno_text(errno));
    return fd.release();
}

void write_output_file(const std::string& path, std::string_view text) {
    Fd fd(open_output_file(path));
    write_all(fd.get(), text, path);
    close_checked(fd, path);
}

void replace_output_file(const std::string& path, std::string_view text) {
    const Place p = place_of(path);
    if (const auto st = entry(p, path))
        if (auto why = refuse_existing(*st, getuid(), false)) refuse(path, *why);
    std::uint64_t salt = 0;
    std::string tmp;
    int raw = -1;
    // A name taken by someone else is tried again with another: the directory may be shared.
    for (int attempt = 0; raw < 0 && attempt < 16; attempt++) {
        if (::getrandom(&salt, sizeof salt, 0) != sizeof salt) fail("cannot write {}: {}", printable(path), errno_text(errno));
        tmp = fmt::format(".{}.{:016x}.tmp", p.name, salt);
        raw = ::openat(p.dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (raw < 0 && errno != EEXIST) fail("cannot write {}: {}", printable(path), errno_text(errno));
    }
    if (raw < 0) fail("cannot write {}: no free temporary name in its directory", printable(path));
    Fd fd(raw);
    try {
        write_all(fd.get(), text, path);
        close_checked(fd, path);
        if (::renameat(p.dir.get(), tmp.c_str(), p.dir.get(), p.name.c_str()) != 0)
            fail("cannot write {}: {}", printable(path), errno_text(errno));
    } catch (...) {
        ::unlinkat(p.dir.get(), tmp.c_str(), 0);
        throw;
    }
}

}  // namespace ksurf
