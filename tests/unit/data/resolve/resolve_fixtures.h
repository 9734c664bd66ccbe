/* Types and functions for the resolver tests. resolve_fixtures.c compiles them with
 * clang -target bpf -g into the BTF that ksurf resolves probes against; resolve_test.cpp
 * includes this header natively, so the offsets it expects come from the host compiler's
 * offsetof, never from ksurf. Valid C and C++. The layout resembles the kernel's file,
 * path, dentry and qstr, the chain probes are most often written against. */
#ifndef KSURF_RESOLVE_FIXTURES_H
#define KSURF_RESOLVE_FIXTURES_H

#ifndef __cplusplus
#include <stdbool.h>
#endif

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef u16 be16;
typedef u32 be32;

enum rs_state { RS_IDLE, RS_BUSY = 7 };

struct rs_name { /* struct qstr */
    union {
        struct {
            u32 hash;
            u32 len;
        };
        u64 hash_len;
    };
    const unsigned char *name;
};

struct rs_node { /* struct dentry */
    unsigned int flags;
    struct rs_name d_name;
    struct rs_node *parent;
    char iname[32];
};

struct rs_path {
    void *mnt;
    struct rs_node *dentry;
};

struct rs_file {
    struct rs_path f_path;
    unsigned int f_flags;
    union {
        long count;
        void *owner;
    };
    unsigned int mode : 3;
    int delta : 5;
    unsigned int wide : 20; /* bits 8..27: three bytes */
    struct {
        u8 pad;
        bool on : 1;
    };
    char tag[8];
    const char *label;
    char *buf;
    u8 *raw;
    signed char *sbytes;
    u8 hw[6];
    int counts[4];
    struct rs_node nodes[2];
    struct rs_node *slots[3];
    struct rs_file **chain;
    enum rs_state state;
    bool ready;
    be32 addr;
    be16 port;
    long long when;
    double ratio;
    unsigned long cookie;
};
typedef struct rs_file rs_file_t;

struct rs_buf {
    u32 len;
    u8 data[]; /* flexible: no bound */
};

int rs_open(struct rs_file *file, const char *name, u32 mode, rs_file_t *other);
long rs_read(struct rs_file *file, char *buf, unsigned long count, long long *pos);
void rs_close(struct rs_file *file);
struct rs_file *rs_noargs(void);
int rs_fill(struct rs_buf *b, void *ctx);

#endif
