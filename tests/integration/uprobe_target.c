/* What the uprobe tests (lang_itest.cpp) probe: functions with known arguments and return
 * values. `uprobe_target A B` calls add(A, B), add(-5, 2), greet("world", 3) and
 * greet("other", 1), in that order, and exits with 0. Not inlined, so each call runs the
 * function's first instruction, where the uprobe is. */
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) int add(int a, int b)
{
	__asm__ volatile("" ::: "memory");
	return a + b;
}

__attribute__((noinline)) int greet(const char *who, int times)
{
	__asm__ volatile("" ::: "memory");
	return (int)strlen(who) * times;
}

int main(int argc, char **argv)
{
	volatile int sum = 0;

	if (argc != 3)
		return 2;
	sum += add(atoi(argv[1]), atoi(argv[2]));
	sum += add(-5, 2);
	/* In memory the process has touched: a non-sleepable BPF program cannot fault in a
	 * page, as the first read of a string constant would need. */
	char who[16];

	strcpy(who, "world");
	sum += greet(who, 3);
	strcpy(who, "other");
	sum += greet(who, 1);
	return sum == 0 ? 1 : 0;
}
