/* Compiled with clang -target bpf -g into the BTF that ksurf reads in the oracle test.
 * The functions give BTF FUNC/FUNC_PROTO records to look up; the globals keep every type
 * of the oracle table in the BTF even when no function refers to it. */
#include "layout_fixtures.h"

#define KEEP_NAME(n) keep_##n
#define KEEP_AS(type, n) type KEEP_NAME(n);
#define KEEP(type) KEEP_AS(type, __COUNTER__)
#define SKIP(type, path)
LAYOUT_TABLE(KEEP, SKIP, SKIP, SKIP)

int fixture_open(struct flags *f, const char *name, point_ptr where, u32 count)
{
    return f->s + name[0] + where->y + (int)count;
}

long fixture_sum(const struct with_arrays *arr, enum color c, union value *v)
{
    return arr->grid[1][2] + c + v->lo_word;
}

void fixture_noargs(void)
{
}
