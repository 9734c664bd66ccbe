// The running kernel's build configuration, for explaining why a feature is missing.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ksurf {

// Value of OPTION ("y", "m", a string) or "" when "is not set"; nullopt when the kernel's
// configuration cannot be read (/proc/config.gz, /boot/config-RELEASE).
std::optional<std::string> kernel_config(std::string_view option);

// " (CONFIG_X is not set)" when the configuration proves OPTION is off, else "".
std::string config_hint(std::string_view option);

}  // namespace ksurf
