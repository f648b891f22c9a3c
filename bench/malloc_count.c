/* malloc_count.c — an LD_PRELOAD library that counts heap allocations (malloc, calloc, realloc,
 * posix_memalign, aligned_alloc, memalign) of the process it is loaded into and writes the count,
 * every 20 ms, as a fixed-width decimal to the file named by $CDR_MALLOC_COUNT_FILE. The executor
 * benchmark reads it before and after a task to show allocations per request. Not a test. */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* glibc's own entry points, so counting never recurses into dlsym's allocations. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static atomic_ullong allocations;

void *malloc(size_t size) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_realloc(pointer, size);
}

void *memalign(size_t alignment, size_t size) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) { return memalign(alignment, size); }

int posix_memalign(void **out, size_t alignment, size_t size) {
  void *pointer = memalign(alignment, size);
  if (!pointer)
    return 12; /* ENOMEM */
  *out = pointer;
  return 0;
}

static void *malloc_count_writer(void *arg) {
  int fd = *(int *)arg;
  for (;;) {
    char line[24];
    int len =
        snprintf(line, sizeof(line), "%20llu\n",
                 (unsigned long long)atomic_load_explicit(&allocations, memory_order_relaxed));
    if (pwrite(fd, line, (size_t)len, 0) != len)
      return NULL;
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

__attribute__((constructor)) static void malloc_count_start(void) {
  static int fd;
  const char *path = getenv("CDR_MALLOC_COUNT_FILE");
  if (!path || (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
    return;
  pthread_t thread;
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  pthread_create(&thread, &attributes, malloc_count_writer, &fd);
  pthread_attr_destroy(&attributes);
}
