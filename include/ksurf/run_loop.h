// How every command waits for records: until Ctrl-C, SIGTERM, SIGHUP, SIGPIPE, its
// duration or its own end, then reads what is already buffered.
#pragma once

#include <functional>

namespace ksurf {

// Without SA_RESTART the waits return at once on Ctrl-C, SIGTERM or SIGHUP, and on SIGPIPE
// when the reader of the output is gone (`ksurf ... | head`): the run ends as if by Ctrl-C,
// removing what it attached, rather than dying with it in place. Install before attaching.
void install_stop_handlers();

// Whether a stop signal has come: long attaches check it between probes, so that Ctrl-C
// ends the run promptly with everything attached so far removed.
bool stop_requested();

// POLL(ms) (false: interrupted) until a stop signal, DURATION_S seconds (0: none) or DONE();
// then POLL(0) once, since records buffered by then still belong to the run. Flushes stdout
// after each wait so that a pipe sees events as they come.
void poll_until_stopped(double duration_s, const std::function<bool(int)>& poll, const std::function<bool()>& done = {});

}  // namespace ksurf
