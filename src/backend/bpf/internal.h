// Shared by the encoder and the backend, not part of the API.
#pragma once

#include <string>

#include "ksurf/bpf_backend.h"

namespace ksurf {

// "p vfs_open", "r mod:f", "p f+0x10", "e sched/sched_process_exec": how errors name a probe.

}  // namespace ksurf
