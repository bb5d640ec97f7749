// A preload library that records every process that loads it: the tests
// show that none of rbee's own privileged code (the shim) ever does.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void record(void) {
	const char *path = getenv("PRELOAD_MARK");
	if (!path) path = "/tmp/rbee-preload-mark";
	FILE *f = fopen(path, "a");
	if (!f) return;
	fprintf(f, "uid=%d pid=%d\n", (int)getuid(), (int)getpid());
	fclose(f);
}
