// libtracefs for C++, for the reader (here) and the tracefs backend's instances and probe
// events. Its header has no extern "C", and its inline tracefs_hist_*() helpers pass an int
// where C++ requires the enum: the int overload declared here makes them compile. It is
// never called (ksurf uses no libtracefs histograms), so it has no definition.
#pragma once

#include <event-parse.h>

struct tracefs_instance;
struct tracefs_hist;
int tracefs_hist_command(tracefs_instance* instance, tracefs_hist* hist, int cmd);

extern "C" {
#include <tracefs.h>
}
