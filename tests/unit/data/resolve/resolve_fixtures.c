/* Compiled with clang -target bpf -g into the BTF resolve_test.cpp resolves against. */
#include "resolve_fixtures.h"

int rs_open(struct rs_file *file, const char *name, u32 mode, rs_file_t *other)
{
    return file->f_flags + name[0] + (int)mode + other->delta;
}

long rs_read(struct rs_file *file, char *buf, unsigned long count, long long *pos)
{
    return file->count + buf[0] + (long)count + *pos;
}

void rs_close(struct rs_file *file)
{
    file->ready = false;
}

struct rs_file *rs_noargs(void)
{
    return 0;
}

int rs_fill(struct rs_buf *b, void *ctx)
{
    return b->data[0] + (ctx != 0);
}

/* Kernel variables as BTF describes them (VAR in a DATASEC): one in .data, typed by its
 * VAR, and one in the per-CPU section, which ksurf refuses. */
struct rs_file rs_current = {.f_flags = 1};
__attribute__((section(".data..percpu"))) long rs_per_cpu = 2;
