/* support.c - scratch files and stdout capture for the unit tests. */
#define _GNU_SOURCE
#include "unit.h"

#include <ftw.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every scratch directory lives under one root per run, so a test that fails before its teardown
 * (check ends a failing test at once) leaves nothing behind: main removes the root at the end. */
static char scratch_root[256];

void scratch_root_create(void) {
    const char *base = getenv("TMPDIR");
    snprintf(scratch_root, sizeof scratch_root, "%s/arbiter-unit-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(scratch_root)) {
        perror("mkdtemp");
        exit(EXIT_FAILURE);
    }
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

void scratch_root_remove(void) { remove_tree(scratch_root); }

void scratch_dir_create(char *out, size_t size) {
    int n = snprintf(out, size, "%s/XXXXXX", scratch_root);
    ck_assert_msg(n > 0 && (size_t)n < size, "scratch path too long");
    ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp(%s) failed", out);
}

void scratch_dir_remove(const char *dir) { remove_tree(dir); }

void scratch_file_write(const char *dir, const char *name, const char *text, char *out, size_t size) {
    int n = snprintf(out, size, "%s/%s", dir, name);
    ck_assert_msg(n > 0 && (size_t)n < size, "scratch path too long");
    FILE *file = fopen(out, "w");
    ck_assert_msg(file != NULL, "cannot create %s", out);
    fputs(text, file);
    fclose(file);
}

int unit_stdout_silence(void) {
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(null, 0);
    dup2(null, STDOUT_FILENO);
    close(null);
    return saved;
}

void unit_stdout_restore(int saved) {
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
}

int unit_stderr_to_file(const char *path) {
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(saved, 0);
    ck_assert_msg(file >= 0, "cannot create %s", path);
    dup2(file, STDERR_FILENO);
    close(file);
    return saved;
}

void unit_stderr_restore(int saved) {
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
}

size_t unit_file_read(const char *path, char *out, size_t size) {
    FILE *file = fopen(path, "r");
    ck_assert_msg(file != NULL, "cannot open %s", path);
    size_t n = fread(out, 1, size - 1, file);
    fclose(file);
    out[n] = '\0';
    return n;
}
