// The workload every per-hit case traces, in a tight loop, optionally paced to RATE
// operations per second. Prints "NS_PER_OP ELAPSED_S".
//   getppid N [RATE]  N getppid() system calls, through syscall() so that no libc
//                     caching can skip the kernel
//   udp N [RATE]      N one-byte UDP datagrams to a socket of its own on 127.0.0.1,
//                     never read: each still crosses ip_rcv and udp_rcv
//   read N [RATE]     N one-byte read()s of /dev/zero: each a call of vfs_read
//   lseek N [RATE]    N lseek()s of /dev/zero to offsets 1..N: a new offset each call,
//                     for keys that never repeat
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int tx = -1;
static struct sockaddr_in dst;

static void op_getppid(void) { syscall(SYS_getppid); }

static int zero = -1;
static char byte;

static void op_read(void) {
	if (read(zero, &byte, 1) != 1) exit(1);
}

static long offset;

static void op_lseek(void) { lseek(zero, ++offset, SEEK_SET); }

static void op_udp(void) {
	sendto(tx, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&dst, sizeof(dst));
}

static void setup_udp(void) {
	int rx = socket(AF_INET, SOCK_DGRAM, 0);
	dst.sin_family = AF_INET;
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(dst);
	if (rx < 0 || bind(rx, (struct sockaddr *)&dst, sizeof(dst)) || getsockname(rx, (struct sockaddr *)&dst, &len)) {
		perror("udp receiver");
		exit(1);
	}
	tx = socket(AF_INET, SOCK_DGRAM, 0);
	if (tx < 0) {
		perror("udp sender");
		exit(1);
	}
}

int main(int argc, char **argv) {
	if (argc < 3 || argc > 4 ||
	    (strcmp(argv[1], "getppid") && strcmp(argv[1], "udp") && strcmp(argv[1], "read") && strcmp(argv[1], "lseek"))) {
		fprintf(stderr, "usage: %s getppid|udp|read|lseek N [RATE]\n", argv[0]);
		return 2;
	}
	void (*op)(void) = op_getppid;
	if (!strcmp(argv[1], "udp")) {
		setup_udp();
		op = op_udp;
	}
	if (!strcmp(argv[1], "read") || !strcmp(argv[1], "lseek")) {
		zero = open("/dev/zero", O_RDONLY);
		if (zero < 0) {
			perror("/dev/zero");
			exit(1);
		}
		op = strcmp(argv[1], "read") ? op_lseek : op_read;
	}
	long n = atol(argv[2]);
	double rate = argc == 4 ? atof(argv[3]) : 0;
	// Pacing checks the clock once per batch: a clock read per call would dominate.
	const long batch = 256;
	double start = now();
	for (long i = 0; i < n; i++) {
		op();
		if (rate > 0 && i % batch == batch - 1) {
			double due = start + (i + 1) / rate;
			double t;
			while ((t = now()) < due)
				if (due - t > 200e-6) usleep((useconds_t)((due - t) * 1e6) - 100);
		}
	}
	double elapsed = now() - start;
	printf("%.1f %.6f\n", elapsed * 1e9 / n, elapsed);
	return 0;
}
