/* nginx_index.c — the cache directory index: entries, a path hash, inotify watches. */
#include "agent/drivers/nginx_index.h"

#include "common/array.h"
#include "common/buf.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pcre2.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bytes of each cache file read to find its key and tags: the first read, and the most read when
 * the stored headers are longer (tag headers of many kilobytes). */
enum { NGINX_HEADER_READ = 16 * 1024, NGINX_HEADER_MAX = 1024 * 1024 };

#define NGINX_WATCH_MASK                                                                           \
  (IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR)

struct index_entry {
  char *path; /* NULL for a free entry */
  char *key;  /* the stored key, byte for byte: $scheme://$host$request_uri */
  char *tags; /* every tag header's values, space-separated; NULL when none */
  uint64_t path_hash;
  uint64_t key_hash; /* of the key after its scheme: the http and https copies of a URL collide */
};

/* Open addressing over entry positions: position + 1, 0 empty, SIZE_MAX deleted. */
struct index_table {
  size_t *slots;
  size_t used; /* slots not empty, deleted ones included */
};

struct index_watch {
  int wd;
  char *path;
};

struct nginx_index {
  pthread_mutex_t lock;
  char *dir;
  char *tag_header; /* response header holding the tags, e.g. Surrogate-Key */
  int inotify;
  bool scanned;
  struct index_entry *entries;
  size_t entry_count, entry_cap; /* entries in use or free; free ones are reused */
  size_t *free_entries;          /* stack of free entry positions */
  size_t free_count, free_cap;
  struct index_table by_path; /* one entry per file */
  struct index_table by_key;  /* every file of a URL: its Vary variants, both schemes */
  size_t table_cap;           /* slots of each table, a power of two */
  struct index_watch *watches;
  size_t watch_count, watch_cap;
  struct buf head; /* a cache file's head: NGINX_HEADER_READ bytes, grown up to NGINX_HEADER_MAX */
};

static uint64_t index_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static const char *index_after_scheme(const char *url) {
  const char *rest = strstr(url, "://");
  return rest ? rest + 3 : url;
}

/* Puts position into the first free slot of hash's probe sequence. */
static void index_table_put(struct nginx_index *index, struct index_table *table, uint64_t hash,
                            size_t position) {
  size_t mask = index->table_cap - 1;
  for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
    if (table->slots[i] == 0 || table->slots[i] == SIZE_MAX) {
      table->used += table->slots[i] == 0;
      table->slots[i] = position + 1;
      return;
    }
  }
}

/* Marks the slot holding position deleted. */
static void index_table_drop(struct nginx_index *index, struct index_table *table, uint64_t hash,
                             size_t position) {
  size_t mask = index->table_cap - 1;
  for (size_t i = (size_t)hash & mask; table->slots[i] != 0; i = (i + 1) & mask) {
    if (table->slots[i] == position + 1) {
      table->slots[i] = SIZE_MAX;
      return;
    }
  }
}

/* The position of path's entry, or SIZE_MAX. */
static size_t index_find_path(const struct nginx_index *index, const char *path) {
  uint64_t hash = index_hash(path);
  size_t mask = index->table_cap - 1;
  for (size_t i = (size_t)hash & mask; index->by_path.slots[i] != 0; i = (i + 1) & mask) {
    size_t slot = index->by_path.slots[i];
    if (slot != SIZE_MAX && index->entries[slot - 1].path_hash == hash &&
        strcmp(index->entries[slot - 1].path, path) == 0)
      return slot - 1;
  }
  return SIZE_MAX;
}

/* Rebuilds both tables with cap slots (dropping deleted slots). */
static bool index_rehash(struct nginx_index *index, size_t cap) {
  size_t *by_path = calloc(cap, sizeof(*by_path));
  size_t *by_key = calloc(cap, sizeof(*by_key));
  if (!by_path || !by_key) {
    free(by_path);
    free(by_key);
    return false;
  }
  free(index->by_path.slots);
  free(index->by_key.slots);
  index->by_path = (struct index_table){by_path, 0};
  index->by_key = (struct index_table){by_key, 0};
  index->table_cap = cap;
  for (size_t e = 0; e < index->entry_count; e++) {
    if (index->entries[e].path) {
      index_table_put(index, &index->by_path, index->entries[e].path_hash, e);
      index_table_put(index, &index->by_key, index->entries[e].key_hash, e);
    }
  }
  return true;
}

static void index_entry_clear(struct index_entry *entry) {
  free(entry->path);
  free(entry->key);
  free(entry->tags);
  entry->path = entry->key = entry->tags = NULL;
}

static void index_remove_at(struct nginx_index *index, size_t position) {
  struct index_entry *entry = &index->entries[position];
  index_table_drop(index, &index->by_path, entry->path_hash, position);
  index_table_drop(index, &index->by_key, entry->key_hash, position);
  index_entry_clear(entry);
  if (!array_reserve((void **)&index->free_entries, &index->free_cap, index->free_count,
                     sizeof(*index->free_entries), 64))
    return; /* the entry stays unused; harmless */
  index->free_entries[index->free_count++] = position;
}

static void index_remove(struct nginx_index *index, const char *path) {
  size_t position = index_find_path(index, path);
  if (position != SIZE_MAX)
    index_remove_at(index, position);
}

/* Adds or replaces the entry for path; tags is a malloc'd string the index takes (may be NULL). */
static void index_put(struct nginx_index *index, const char *path, const char *key, size_t key_len,
                      char *tags) {
  index_remove(index, path);
  struct index_entry entry = {strdup(path), strndup(key, key_len), tags, 0, 0};
  size_t most = index->by_path.used > index->by_key.used ? index->by_path.used : index->by_key.used;
  if (!entry.path || !entry.key ||
      ((most + 1) * 2 > index->table_cap && !index_rehash(index, index->table_cap * 2)) ||
      (index->free_count == 0 &&
       !array_reserve((void **)&index->entries, &index->entry_cap, index->entry_count,
                      sizeof(*index->entries), 1024))) {
    index_entry_clear(&entry);
    return;
  }
  size_t position =
      index->free_count > 0 ? index->free_entries[--index->free_count] : index->entry_count++;
  entry.path_hash = index_hash(entry.path);
  entry.key_hash = index_hash(index_after_scheme(entry.key));
  index->entries[position] = entry;
  index_table_put(index, &index->by_path, entry.path_hash, position);
  index_table_put(index, &index->by_key, entry.key_hash, position);
}

/* Every value of the header lines "name: value" (name without case) in the stored headers text,
 * joined by spaces, as a malloc'd string; NULL when there is none. nginx stores the origin's
 * header lines as received, so an origin sending its tags in several lines has several here. */
static char *index_header_values(const char *text, size_t len, const char *name) {
  size_t name_len = strlen(name);
  char *values = NULL;
  size_t used = 0;
  for (const char *line = text; line && line < text + len;) {
    const char *end = memchr(line, '\n', (size_t)(text + len - line));
    size_t line_len = end ? (size_t)(end - line) : (size_t)(text + len - line);
    if (line_len <= 1)
      break; /* end of the stored headers */
    if (line_len > name_len && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
      const char *value = line + name_len + 1;
      while (*value == ' ')
        value++;
      size_t value_len = (size_t)(line + line_len - value);
      while (value_len && (value[value_len - 1] == '\r' || value[value_len - 1] == ' '))
        value_len--;
      char *more = realloc(values, used + value_len + 2);
      if (!more)
        break;
      values = more;
      if (used)
        values[used++] = ' ';
      memcpy(values + used, value, value_len);
      used += value_len;
      values[used] = '\0';
    }
    line = end ? end + 1 : NULL;
  }
  return values;
}

/* Reads the head of the cache file fd into index->head: at least until the end of its stored
 * headers (a blank line after the KEY line), at most NGINX_HEADER_MAX bytes. Returns its length. */
static size_t index_read_head(struct nginx_index *index, int fd) {
  struct buf *head = &index->head;
  head->len = 0;
  for (;;) {
    if (head->len == head->cap && buf_reserve(head, head->cap) != 0)
      return head->len; /* NGINX_HEADER_MAX read, or out of memory: what is there is parsed */
    ssize_t got = read(fd, head->data + head->len, head->cap - head->len);
    if (got <= 0)
      return head->len;
    head->len += (size_t)got;
    const char *text = buf_text(head);
    const char *key = memmem(text, head->len, "\nKEY: ", 6);
    if (key && memmem(key, (size_t)(text + head->len - key), "\r\n\r\n", 4))
      return head->len;
  }
}

/* Reads a cache file's key and tags into the index; files that are not cache files are skipped. */
static void index_file(struct nginx_index *index, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  size_t len = index_read_head(index, fd);
  close(fd);
  const char *text = buf_text(&index->head);
  const char *key_line = memmem(text, len, "\nKEY: ", 6);
  if (!key_line)
    return;
  const char *key = key_line + 6;
  const char *key_end = memchr(key, '\n', (size_t)(text + len - key));
  if (!key_end)
    return;
  const char *headers = key_end + 1;
  char *tags = index_header_values(headers, (size_t)(text + len - headers), index->tag_header);
  index_put(index, path, key, (size_t)(key_end - key), tags);
}

static const char *index_watch_path(struct nginx_index *index, int wd) {
  for (size_t i = 0; i < index->watch_count; i++) {
    if (index->watches[i].wd == wd)
      return index->watches[i].path;
  }
  return NULL;
}

static void index_watch(struct nginx_index *index, const char *dir) {
  int wd = inotify_add_watch(index->inotify, dir, NGINX_WATCH_MASK);
  if (wd < 0 || index_watch_path(index, wd))
    return;
  if (!array_reserve((void **)&index->watches, &index->watch_cap, index->watch_count,
                     sizeof(*index->watches), 64))
    return;
  index->watches[index->watch_count++] = (struct index_watch){wd, strdup(dir)};
}

/* Watches dir and indexes every file below it. Returns false when dir cannot be read. */
static bool index_scan(struct nginx_index *index, const char *dir) {
  index_watch(index, dir); /* watch first: nothing created during the scan is missed */
  DIR *handle = opendir(dir);
  if (!handle)
    return false;
  struct dirent *entry;
  char path[4096];
  while ((entry = readdir(handle))) {
    if (entry->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
    if (entry->d_type == DT_DIR)
      index_scan(index, path);
    else if (entry->d_type == DT_REG)
      index_file(index, path);
  }
  closedir(handle);
  return true;
}

static void index_clear(struct nginx_index *index) {
  for (size_t e = 0; e < index->entry_count; e++)
    index_entry_clear(&index->entries[e]);
  index->entry_count = index->free_count = 0;
  for (size_t w = 0; w < index->watch_count; w++) {
    inotify_rm_watch(index->inotify, index->watches[w].wd);
    free(index->watches[w].path);
  }
  index->watch_count = 0;
  index_rehash(index, index->table_cap);
}

/* Applies every queued inotify event; rebuilds from scratch when events were lost. */
static bool index_drain(struct nginx_index *index) {
  char events[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
  char path[4096];
  for (;;) {
    ssize_t len = read(index->inotify, events, sizeof(events));
    if (len <= 0)
      return true;
    for (char *at = events; at < events + len;) {
      struct inotify_event *event = (struct inotify_event *)(void *)at;
      at += sizeof(*event) + event->len;
      if (event->mask & IN_Q_OVERFLOW) {
        index_clear(index);
        return index_scan(index, index->dir);
      }
      const char *dir = index_watch_path(index, event->wd);
      if (!dir || event->len == 0)
        continue;
      snprintf(path, sizeof(path), "%s/%s", dir, event->name);
      if (event->mask & IN_ISDIR) {
        if (event->mask & (IN_CREATE | IN_MOVED_TO))
          index_scan(index, path);
      } else if (event->mask & (IN_DELETE | IN_MOVED_FROM)) {
        index_remove(index, path);
      } else if (event->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) {
        index_file(index, path);
      }
    }
  }
}

/* Brings the index up to date: first use scans, later uses apply inotify events. */
static bool index_refresh(struct nginx_index *index) {
  if (!index->scanned) {
    index->scanned = true;
    return index_scan(index, index->dir);
  }
  return index_drain(index);
}

static bool index_has_tag(const char *tags, const char *tag) {
  size_t tag_len = strlen(tag);
  for (const char *p = tags; *p;) {
    while (*p == ' ')
      p++;
    const char *start = p;
    while (*p && *p != ' ')
      p++;
    if ((size_t)(p - start) == tag_len && memcmp(start, tag, tag_len) == 0)
      return true;
  }
  return false;
}

/* Bounds on a scan of every entry (prefix, regex and tag purges), so that no tenant's pattern
 * holds the index from the others': the lock is let go every INDEX_SCAN_CHUNK entries (exact
 * purges get in between), a scan gives up after INDEX_SCAN_BUDGET_MS, and one key's match after
 * INDEX_MATCH_LIMIT backtracking steps (a catastrophic regex such as (a+)+$ fails at once). */
enum {
  INDEX_SCAN_CHUNK = 1024,
  INDEX_SCAN_BUDGET_MS = 10000,
  INDEX_MATCH_LIMIT = 1000000,
  INDEX_DEPTH_LIMIT = 10000
};

/* What a purge looks for, prepared once. */
struct index_match {
  Cdr__Operation operation;
  const char *target;
  const char *after_scheme; /* URLs and prefixes are compared after the scheme: both copies go */
  size_t after_scheme_len;
  pcre2_code *regex;
  pcre2_match_data *data;
  pcre2_match_context *limits;
  struct timespec deadline; /* CLOCK_MONOTONIC: when scans give up */
  const char *stopped;      /* why a scan gave up (the item's reason), NULL while it has not */
};

/* Prepares match for item; false (outcome set) when its regex does not compile. */
static bool index_match_prepare(struct index_match *match, const struct exec_item *item,
                                struct exec_outcome *outcome) {
  *match = (struct index_match){.operation = item->operation, .target = item->target};
  match->after_scheme = index_after_scheme(item->target);
  match->after_scheme_len = strlen(match->after_scheme);
  clock_gettime(CLOCK_MONOTONIC, &match->deadline);
  match->deadline.tv_sec += INDEX_SCAN_BUDGET_MS / 1000;
  if (item->operation != CDR__OPERATION__PURGE_REGEX)
    return true;
  int code;
  PCRE2_SIZE offset;
  match->regex =
      pcre2_compile((PCRE2_SPTR)item->target, PCRE2_ZERO_TERMINATED, 0, &code, &offset, NULL);
  match->data = match->regex ? pcre2_match_data_create_from_pattern(match->regex, NULL) : NULL;
  match->limits = pcre2_match_context_create(NULL);
  if (!match->data || !match->limits) {
    driver_outcome_failed(outcome, 0, CURLE_OK);
    snprintf(outcome->reason, sizeof(outcome->reason), "bad_regex");
    return false;
  }
  pcre2_jit_compile(match->regex, PCRE2_JIT_COMPLETE); /* without JIT, the interpreter */
  pcre2_set_match_limit(match->limits, INDEX_MATCH_LIMIT);
  pcre2_set_depth_limit(match->limits, INDEX_DEPTH_LIMIT);
  return true;
}

static void index_match_release(struct index_match *match) {
  pcre2_match_context_free(match->limits);
  pcre2_match_data_free(match->data);
  pcre2_code_free(match->regex);
}

static bool index_entry_matches(const struct index_entry *entry, struct index_match *match) {
  switch (match->operation) {
  case CDR__OPERATION__PURGE_URL:
    return strcmp(index_after_scheme(entry->key), match->after_scheme) == 0;
  case CDR__OPERATION__PURGE_PREFIX:
    return strncmp(index_after_scheme(entry->key), match->after_scheme, match->after_scheme_len) ==
           0;
  case CDR__OPERATION__PURGE_REGEX: {
    int rc = pcre2_match(match->regex, (PCRE2_SPTR)entry->key, PCRE2_ZERO_TERMINATED, 0, 0,
                         match->data, match->limits);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_JIT_STACKLIMIT)
      match->stopped = "regex_too_complex";
    return rc >= 0;
  }
  case CDR__OPERATION__PURGE_TAG: return entry->tags && index_has_tag(entry->tags, match->target);
  default: return false;
  }
}

/* Between two chunks of a scan: lets others have the index, and gives up past the deadline. */
static void index_scan_pause(struct nginx_index *index, struct index_match *match) {
  pthread_mutex_unlock(&index->lock);
  pthread_mutex_lock(&index->lock);
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (now.tv_sec > match->deadline.tv_sec ||
      (now.tv_sec == match->deadline.tv_sec && now.tv_nsec > match->deadline.tv_nsec))
    match->stopped = "regex_time_budget_exceeded";
}

/* Calls visit for every entry matching, each once: an exact URL through the key table (its
 * variants and both schemes share a hash), anything else over every entry, in chunks (see
 * INDEX_SCAN_CHUNK; entries a purge elsewhere changed meanwhile may be visited or not). visit
 * may remove the entry it is given. Lock held. */
static void index_each_match(struct nginx_index *index, struct index_match *match,
                             void (*visit)(struct nginx_index *index, size_t position,
                                           void *context),
                             void *context) {
  if (match->operation == CDR__OPERATION__PURGE_URL) {
    uint64_t hash = index_hash(match->after_scheme);
    size_t mask = index->table_cap - 1;
    for (size_t i = (size_t)hash & mask; index->by_key.slots[i] != 0; i = (i + 1) & mask) {
      size_t slot = index->by_key.slots[i];
      if (slot != SIZE_MAX && index->entries[slot - 1].key_hash == hash &&
          index_entry_matches(&index->entries[slot - 1], match))
        visit(index, slot - 1, context);
    }
    return;
  }
  for (size_t e = 0; e < index->entry_count && !match->stopped; e++) {
    if (e % INDEX_SCAN_CHUNK == INDEX_SCAN_CHUNK - 1) {
      index_scan_pause(index, match);
      if (match->stopped || e >= index->entry_count)
        break;
    }
    if (index->entries[e].path && index_entry_matches(&index->entries[e], match))
      visit(index, e, context);
  }
}

/* Deletes one matching file; remembers the first error other than "already gone". */
static void index_delete(struct nginx_index *index, size_t position, void *context) {
  int *unlink_error = context;
  if (unlink(index->entries[position].path) != 0 && errno != ENOENT) {
    if (!*unlink_error)
      *unlink_error = errno;
    return;
  }
  index_remove_at(index, position);
}

struct index_check {
  struct timespec since; /* when the purge started, on the clock file times are taken from */
  size_t stale;          /* matching files written before it that are still there */
};

/* Counts a matching file that was on disk before the purge began: a copy the purge missed. A
 * file written since is a fresh copy a visitor's request fetched after the purge. */
static void index_check(struct nginx_index *index, size_t position, void *context) {
  struct index_check *check = context;
  struct stat st;
  if (stat(index->entries[position].path, &st) != 0)
    return;
  if (st.st_mtim.tv_sec < check->since.tv_sec ||
      (st.st_mtim.tv_sec == check->since.tv_sec && st.st_mtim.tv_nsec < check->since.tv_nsec))
    check->stale++;
}

void nginx_index_purge(struct nginx_index *index, const struct exec_item *item,
                       struct exec_outcome *outcome) {
  struct index_match match;
  if (!index_match_prepare(&match, item, outcome)) {
    index_match_release(&match);
    return;
  }
  /* File times come from the kernel's coarse clock: compare them with that clock. */
  struct index_check check = {.stale = 0};
  clock_gettime(CLOCK_REALTIME_COARSE, &check.since);
  int unlink_error = 0;
  pthread_mutex_lock(&index->lock);
  bool readable = index_refresh(index);
  /* Delete, then look again with every event that arrived meanwhile: a file nginx finished
   * writing from a fetch begun before the purge is caught on the second round. */
  for (int round = 0; readable && !unlink_error && !match.stopped && round < 2; round++) {
    index_each_match(index, &match, index_delete, &unlink_error);
    if (!item->verify)
      break;
    readable = index_refresh(index);
    check.stale = 0;
    if (readable)
      index_each_match(index, &match, index_check, &check);
    if (check.stale == 0)
      break;
  }
  pthread_mutex_unlock(&index->lock);
  index_match_release(&match);
  if (!readable || unlink_error || match.stopped || check.stale) {
    driver_outcome_failed(outcome, 0, CURLE_OK);
    snprintf(outcome->reason, sizeof(outcome->reason), "%s",
             !readable       ? "cache_dir_unreadable"
             : unlink_error  ? "cache_dir_not_writable"
             : match.stopped ? match.stopped
                             : "still_cached");
    return;
  }
  outcome->outcome = CDR__OUTCOME__SUCCEEDED;
  outcome->verified = item->verify;
}

/* Whether a file's stored key is url, after applying the events that arrived. */
static bool index_find_key(struct nginx_index *index, const char *url, bool *readable) {
  uint64_t hash = index_hash(index_after_scheme(url));
  bool found = false;
  pthread_mutex_lock(&index->lock);
  *readable = index_refresh(index);
  size_t mask = index->table_cap - 1;
  for (size_t i = (size_t)hash & mask; *readable && !found && index->by_key.slots[i] != 0;
       i = (i + 1) & mask) {
    size_t slot = index->by_key.slots[i];
    found = slot != SIZE_MAX && index->entries[slot - 1].key_hash == hash &&
            strcmp(index->entries[slot - 1].key, url) == 0;
  }
  pthread_mutex_unlock(&index->lock);
  return found;
}

bool nginx_index_holds(struct nginx_index *index, const char *url, int wait_ms, bool *readable) {
  struct timespec now, end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += wait_ms / 1000;
  end.tv_nsec += (wait_ms % 1000) * 1000000L;
  for (;;) {
    if (index_find_key(index, url, readable))
      return true;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int left = (int)((end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000);
    if (!*readable || left <= 0)
      return false;
    /* Sleep until nginx changes something (or the time is up); another thread may apply the
     * event first, which the next look sees all the same. */
    struct pollfd ready = {.fd = index->inotify, .events = POLLIN};
    poll(&ready, 1, left);
  }
}

size_t nginx_index_size(struct nginx_index *index) {
  pthread_mutex_lock(&index->lock);
  index_refresh(index);
  size_t size = index->entry_count - index->free_count;
  pthread_mutex_unlock(&index->lock);
  return size;
}

struct nginx_index *nginx_index_create(const char *dir, const char *tag_header) {
  struct nginx_index *index = calloc(1, sizeof(*index));
  if (!index)
    return NULL;
  index->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  index->dir = strdup(dir);
  index->tag_header = strdup(tag_header);
  buf_init(&index->head, NGINX_HEADER_MAX);
  if (index->inotify < 0 || !index->dir || !index->tag_header ||
      buf_reserve(&index->head, NGINX_HEADER_READ) != 0 || !index_rehash(index, 1024)) {
    nginx_index_destroy(index);
    return NULL;
  }
  pthread_mutex_init(&index->lock, NULL);
  return index;
}

void nginx_index_destroy(struct nginx_index *index) {
  if (!index)
    return;
  for (size_t e = 0; e < index->entry_count; e++)
    index_entry_clear(&index->entries[e]);
  for (size_t w = 0; w < index->watch_count; w++)
    free(index->watches[w].path);
  if (index->inotify >= 0)
    close(index->inotify);
  free(index->entries);
  free(index->free_entries);
  free(index->by_path.slots);
  free(index->by_key.slots);
  buf_free(&index->head);
  free(index->watches);
  free(index->dir);
  free(index->tag_header);
  free(index);
}
