/* fuzz_tmp.h - for harnesses whose parser reads a path: one private scratch
 * directory per fuzzing process (in /dev/shm when there is one), files in it
 * rewritten from the input on every run. Removed at exit. */
#ifndef FUZZ_TMP_H
#define FUZZ_TMP_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[64];

static void fuzz_tmp_cleanup(void) {
    char cmd[128];
    if (fuzz_dir[0] && strchr(fuzz_dir, '\'') == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fuzz_dir);
        if (system(cmd)) {}
    }
}

/* The scratch directory (created on first use; aborts if it cannot be). */
static const char *fuzz_tmpdir(void) {
    if (!fuzz_dir[0]) {
        snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/etfuzz.XXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
        if (!mkdtemp(fuzz_dir)) abort();
        atexit(fuzz_tmp_cleanup);
    }
    return fuzz_dir;
}

/* dir/name into out (size cap). */
static const char *fuzz_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", fuzz_tmpdir(), name);
    return out;
}

/* Writes n bytes to dir/name; returns the path in out. Aborts on I/O failure. */
static const char *fuzz_write(char *out, size_t cap, const char *name, const void *data, size_t n) {
    fuzz_path(out, cap, name);
    FILE *f = fopen(out, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) abort();
    return out;
}
#endif
