// Files ksurf writes for the user (-w, -o, and any later output). ksurf usually runs as
// root and is pointed at shared directories like /tmp, where another local user may have
// planted the name first: a symlink or hard link to a file of root's would have ksurf
// overwrite it. So the last component is never followed, and an existing file is written
// only if it is a regular file of the real user ksurf runs for (getuid()) with no other
// link. Directories in the path are followed: choosing them is the user's. Refusals are
// Errors naming the path and the reason.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace ksurf {

// Why the existing file ST may not be replaced (IN_PLACE false: renamed over) or truncated
// and written through (IN_PLACE true: a second link would carry the write elsewhere) for
// user OWNER; nullopt when it may.
std::optional<std::string> refuse_existing(const struct stat& st, uid_t owner, bool in_place);

// PATH opened for writing, empty, mode 0600, close-on-exec: created, or an existing file
// refuse_existing() allows, truncated. The caller owns the descriptor.
int open_output_file(const std::string& path);

// TEXT written to PATH as open_output_file() opens it.
void write_output_file(const std::string& path, std::string_view text);

// TEXT put at PATH atomically, for files read while ksurf updates them: written to a new
// temporary file in the same directory (O_EXCL|O_NOFOLLOW, mode 0600), then renamed over
// PATH, so a reader sees the old or the new contents, never a part. Not synced: a crash
// may lose the update, never leave it half written.
void replace_output_file(const std::string& path, std::string_view text);

}  // namespace ksurf
