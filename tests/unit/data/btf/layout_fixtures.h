/* Fixture types for the BTF layout oracle. layout_fixtures.c compiles them with
 * clang -target bpf -g into an object carrying .BTF (what ksurf reads); layout_oracle.c
 * compiles them natively with the host C compiler and prints offsetof/sizeof (the truth).
 *
 * Both targets are little-endian LP64 with the same alignment rules for what is here.
 * Left out because bpf and x86-64 disagree: long double (8 bytes on bpf, 16 on x86-64)
 * and a bare __attribute__((aligned)) (largest alignment 8 on bpf, 16 on x86-64).
 * Enums with negative values are left out of signedness checks: gcc makes them signed,
 * but clang < 15 does not set the BTF kflag that marks a signed enum. Enumerators above
 * 32 bits keep their size in clang 14's BTF but lose their values (no ENUM64 yet). */
#ifndef KSURF_LAYOUT_FIXTURES_H
#define KSURF_LAYOUT_FIXTURES_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef long long s64;
typedef u32 be32; /* a typedef of a typedef, like __be32 */

enum color { RED, GREEN = 5, BLUE };
enum __attribute__((packed)) tiny { TINY_A, TINY_B = 200 };
enum __attribute__((packed)) mid { MID_A, MID_B = 0x1234 };
enum wide { WIDE_A = 1, WIDE_B = 0x100000000ULL };

struct point {
    int x, y;
};
typedef struct point point_t;
typedef struct point *point_ptr;
typedef struct {
    u16 lo;
    u16 hi;
} pair_t;

struct flags {
    unsigned int a : 3;
    unsigned int b : 7; /* crosses from byte 0 into byte 1 */
    int s : 5;          /* signed */
    unsigned int w : 17; /* 15..31: spans three bytes */
    u8 tail;
    unsigned long long big : 40;
    unsigned long long next : 30; /* does not fit the rest of big's unit: starts at bit 128 */
    _Bool on : 1;
    signed char sc : 3;
    enum color col : 4;
    int : 0; /* aligns what follows to the next int; BTF omits unnamed bitfields */
    u16 after : 9;
    long sl : 33;
};

struct __attribute__((packed)) packed_hdr {
    u8 kind;
    u32 len; /* at 1 */
    u16 port;
    u64 stamp;
    unsigned int pbits : 12; /* packed bitfields share bytes freely */
    unsigned int pmore : 12;
};

struct __attribute__((aligned(32))) aligned_box {
    char tag;
    int value __attribute__((aligned(16)));
    struct packed_hdr hdr;
    short last;
};

struct with_arrays {
    char name[16];
    int grid[3][4];
    struct point pts[5];
    u8 cube[2][3][4];
    point_t *refs[3];
    int (*rowp)[4]; /* pointer to an array */
    struct flags fl[2];
};

struct callbacks {
    int (*open)(struct flags *f, const char *name);
    void (*close)(void);
    long (*logf)(const char *fmt, ...);
    point_ptr cursor;
    u64 cookie;
};

struct quals {
    const int ci;
    volatile u32 vu;
    const volatile u64 cvu;
    const char *cstr;
    char *const pconst;
    const struct point cp;
    be32 addr;
};

struct nested {
    u32 id;
    union {
        u64 raw;
        struct {
            u32 lo;
            union {
                u32 hi;
                struct {
                    u16 hi_lo;
                    u16 hi_hi : 12;
                    u16 hi_flag : 4;
                };
            };
        };
        pair_t pair; /* a named member inside an anonymous union */
    };
    struct {
        struct point where;
        union {
            s8 delta;
            u8 udelta;
        } d;
    } inner;
    struct {
        char pad;
        struct {
            struct {
                char deepest;
                s16 deep_arr[3];
            };
        };
    };
    enum tiny t8;
    enum mid t16;
    enum color t32;
    enum wide t64;
};
typedef struct nested nested_t;

struct ring {
    u32 head;
    nested_t slots[3];
    const struct quals *owner;
};

union value {
    s64 i;
    u64 u;
    double d;
    float f;
    u8 bytes[8];
    struct point pt;
    struct {
        u32 lo_word;
        u32 hi_word;
    };
};

/* The oracle table: every type and member path the test checks, written once.
 *   T(type)        sizeof(type)
 *   M(type, path)  offsetof and sizeof of a member path
 *   I(type, path)  the same, and whether the integer/enum member is signed
 *   B(type, path)  bit offset, width and signedness of a bitfield */
#define LAYOUT_TABLE(T, M, I, B)                                                               \
    T(u8) T(be32) T(enum color) T(enum tiny) T(enum mid) T(enum wide)                          \
    T(struct point) T(point_t) T(point_ptr) T(pair_t)                                          \
    I(struct point, x) I(struct point, y) I(point_t, y) I(pair_t, hi)                          \
    T(struct flags)                                                                            \
    B(struct flags, a) B(struct flags, b) B(struct flags, s) B(struct flags, w)                \
    I(struct flags, tail) B(struct flags, big) B(struct flags, next) B(struct flags, on)       \
    B(struct flags, sc) B(struct flags, col) B(struct flags, after) B(struct flags, sl)        \
    T(struct packed_hdr)                                                                       \
    I(struct packed_hdr, kind) I(struct packed_hdr, len) I(struct packed_hdr, port)            \
    I(struct packed_hdr, stamp) B(struct packed_hdr, pbits) B(struct packed_hdr, pmore)       \
    T(struct aligned_box)                                                                      \
    I(struct aligned_box, tag) I(struct aligned_box, value) M(struct aligned_box, hdr)         \
    I(struct aligned_box, hdr.len) B(struct aligned_box, hdr.pmore) I(struct aligned_box, last) \
    T(struct with_arrays)                                                                      \
    M(struct with_arrays, name) I(struct with_arrays, name[3]) M(struct with_arrays, grid)    \
    M(struct with_arrays, grid[2]) I(struct with_arrays, grid[2][3])                          \
    M(struct with_arrays, pts) M(struct with_arrays, pts[4]) I(struct with_arrays, pts[4].y)  \
    M(struct with_arrays, cube[1]) M(struct with_arrays, cube[1][2])                          \
    I(struct with_arrays, cube[1][2][3]) M(struct with_arrays, refs)                          \
    M(struct with_arrays, refs[2]) M(struct with_arrays, rowp) M(struct with_arrays, fl[1])   \
    B(struct with_arrays, fl[1].w) B(struct with_arrays, fl[1].next)                          \
    T(struct callbacks)                                                                        \
    M(struct callbacks, open) M(struct callbacks, close) M(struct callbacks, logf)            \
    M(struct callbacks, cursor) I(struct callbacks, cookie)                                   \
    T(struct quals)                                                                            \
    I(struct quals, ci) I(struct quals, vu) I(struct quals, cvu) M(struct quals, cstr)        \
    M(struct quals, pconst) M(struct quals, cp) I(struct quals, cp.y) I(struct quals, addr)   \
    T(struct nested) T(nested_t)                                                               \
    I(struct nested, id) I(struct nested, raw) I(struct nested, lo) I(struct nested, hi)      \
    I(struct nested, hi_lo) B(struct nested, hi_hi) B(struct nested, hi_flag)                 \
    M(struct nested, pair) I(struct nested, pair.hi) M(struct nested, inner)                  \
    M(struct nested, inner.where) I(struct nested, inner.where.y) M(struct nested, inner.d)   \
    I(struct nested, inner.d.delta) I(struct nested, inner.d.udelta) I(struct nested, pad)    \
    I(struct nested, deepest) M(struct nested, deep_arr) I(struct nested, deep_arr[2])        \
    I(struct nested, t8) I(struct nested, t16) I(struct nested, t32) I(struct nested, t64)    \
    I(nested_t, hi_lo) B(nested_t, hi_flag) I(nested_t, deep_arr[1])                          \
    T(struct ring)                                                                             \
    I(struct ring, head) M(struct ring, slots) M(struct ring, slots[2])                       \
    I(struct ring, slots[2].hi) B(struct ring, slots[2].hi_hi) M(struct ring, slots[1].pair)  \
    I(struct ring, slots[1].pair.lo) I(struct ring, slots[2].inner.where.x)                   \
    I(struct ring, slots[2].deep_arr[2]) I(struct ring, slots[2].t64) M(struct ring, owner)   \
    T(union value)                                                                             \
    I(union value, i) I(union value, u) M(union value, d) M(union value, f)                   \
    I(union value, bytes[7]) I(union value, pt.y) I(union value, hi_word)

#endif
