/* Row printers for the layout oracles: expand an oracle table (see layout_fixtures.h)
 * into tab-separated lines the BTF test compares against:
 *   T <type> - <size>
 *   M <type> <path> <offset> <size>
 *   I <type> <path> <offset> <size> <signed>
 *   B <type> <path> <bit offset> <bits> <signed>
 * Bitfields have no offsetof: the oracle sets one to all ones in a zeroed object and
 * finds the bits that changed. */
#ifndef KSURF_ORACLE_H
#define KSURF_ORACLE_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A runtime value, so assigning it to narrow bitfields draws no overflow warnings. */
static volatile long long oracle_all_ones = -1;

static void oracle_bits(const char *type, const char *path, const unsigned char *obj, size_t size, int is_signed)
{
    size_t first = 0, count = 0;
    for (size_t i = 0; i < size * 8; i++) {
        if (!(obj[i / 8] >> (i % 8) & 1))
            continue;
        if (!count)
            first = i;
        if (i != first + count) {
            fprintf(stderr, "%s.%s: set bits are not contiguous\n", type, path);
            exit(1);
        }
        count++;
    }
    printf("B\t%s\t%s\t%zu\t%zu\t%d\n", type, path, first, count, is_signed);
}

#define ORACLE_T(type) printf("T\t%s\t-\t%zu\n", #type, sizeof(type));
#define ORACLE_M(type, path) \
    printf("M\t%s\t%s\t%zu\t%zu\n", #type, #path, offsetof(type, path), sizeof(((type *)0)->path));
/* Comparing with 1 rather than 0 keeps -Wtype-limits quiet for unsigned types. */
#define ORACLE_I(type, path)                                                          \
    printf("I\t%s\t%s\t%zu\t%zu\t%d\n", #type, #path, offsetof(type, path),           \
           sizeof(((type *)0)->path),                                                  \
           (__typeof__(((type *)0)->path))-1 < (__typeof__(((type *)0)->path))1);
#define ORACLE_B(type, path)                                                          \
    {                                                                                 \
        type obj;                                                                     \
        memset(&obj, 0, sizeof(obj));                                                 \
        obj.path = oracle_all_ones;                                                   \
        oracle_bits(#type, #path, (const unsigned char *)&obj, sizeof(obj), obj.path < 1); \
    }

#endif
