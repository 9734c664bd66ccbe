// libpcap.a holds its D-Bus capture module, whose libdbus-1.a calls two libsystemd
// functions for socket activation of D-Bus servers. Debian ships no libsystemd.a, and ksurf
// only compiles filters and never runs a D-Bus server: these keep the binary static.
extern "C" int sd_listen_fds(int) { return 0; }
extern "C" int sd_is_socket(int, int, int, int) { return 0; }
