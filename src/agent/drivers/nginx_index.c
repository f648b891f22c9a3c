/* nginx_index.c — the cache directory index: entries, a path hash, inotify watches. */
#include "agent/drivers/nginx_index.h"

#include "common/array.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

enum { NGINX_HEADER_READ = 16 * 1024 }; /* bytes of each cache file read to find key and tags */

#define NGINX_WATCH_MASK                                                                           \
  (IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR)

struct index_entry {
  char *path; /* NULL for a free entry */
  char *key;
  char *tags; /* Surrogate-Key value, space-separated; NULL when none */
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
  size_t *slots; /* open addressing: entry position + 1, 0 empty, SIZE_MAX deleted */
  size_t slot_cap, slot_used;
  struct index_watch *watches;
  size_t watch_count, watch_cap;
  char buffer[NGINX_HEADER_READ];
};

static uint64_t index_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* Finds the slot of path, or the slot where it would go. */
static size_t *index_slot(struct nginx_index *index, const char *path, bool for_insert) {
  size_t mask = index->slot_cap - 1;
  size_t *tombstone = NULL;
  for (size_t i = (size_t)index_hash(path) & mask;; i = (i + 1) & mask) {
    size_t *slot = &index->slots[i];
    if (*slot == 0)
      return for_insert && tombstone ? tombstone : slot;
    if (*slot == SIZE_MAX) {
      if (!tombstone)
        tombstone = slot;
      continue;
    }
    if (strcmp(index->entries[*slot - 1].path, path) == 0)
      return slot;
  }
}

static bool index_rehash(struct nginx_index *index, size_t cap) {
  size_t *slots = calloc(cap, sizeof(*slots));
  if (!slots)
    return false;
  free(index->slots);
  index->slots = slots;
  index->slot_cap = cap;
  index->slot_used = 0;
  for (size_t e = 0; e < index->entry_count; e++) {
    if (index->entries[e].path) {
      *index_slot(index, index->entries[e].path, true) = e + 1;
      index->slot_used++;
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

static void index_remove(struct nginx_index *index, const char *path) {
  size_t *slot = index_slot(index, path, false);
  if (*slot == 0)
    return;
  size_t position = *slot - 1;
  *slot = SIZE_MAX;
  index_entry_clear(&index->entries[position]);
  if (!array_reserve((void **)&index->free_entries, &index->free_cap, index->free_count,
                     sizeof(*index->free_entries), 64))
    return; /* the entry stays unused; harmless */
  index->free_entries[index->free_count++] = position;
}

/* Adds or replaces the entry for path. */
static void index_put(struct nginx_index *index, const char *path, const char *key, size_t key_len,
                      const char *tags, size_t tags_len) {
  index_remove(index, path);
  if ((index->slot_used + 1) * 2 > index->slot_cap &&
      !index_rehash(index, index->slot_cap ? index->slot_cap * 2 : 1024))
    return;
  size_t position;
  if (index->free_count > 0) {
    position = index->free_entries[--index->free_count];
  } else {
    if (!array_reserve((void **)&index->entries, &index->entry_cap, index->entry_count,
                       sizeof(*index->entries), 1024))
      return;
    position = index->entry_count++;
  }
  struct index_entry *entry = &index->entries[position];
  entry->path = strdup(path);
  entry->key = strndup(key, key_len);
  entry->tags = tags ? strndup(tags, tags_len) : NULL;
  if (!entry->path || !entry->key) {
    index_entry_clear(entry);
    return;
  }
  size_t *slot = index_slot(index, path, true);
  if (*slot == 0)
    index->slot_used++;
  *slot = position + 1;
}

/* Finds header line "name: value" (name without case) in text; returns value and its length. */
static const char *index_header(const char *text, size_t len, const char *name, size_t *value_len) {
  size_t name_len = strlen(name);
  for (const char *line = text; line && line < text + len;) {
    const char *end = memchr(line, '\n', (size_t)(text + len - line));
    size_t line_len = end ? (size_t)(end - line) : (size_t)(text + len - line);
    if (line_len > name_len && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
      const char *value = line + name_len + 1;
      while (*value == ' ')
        value++;
      *value_len = (size_t)(line + line_len - value);
      while (*value_len && (value[*value_len - 1] == '\r' || value[*value_len - 1] == ' '))
        (*value_len)--;
      return value;
    }
    if (line_len <= 1)
      return NULL; /* end of the stored headers */
    line = end ? end + 1 : NULL;
  }
  return NULL;
}

/* Reads a cache file's key and tags into the index; files that are not cache files are skipped. */
static void index_file(struct nginx_index *index, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  ssize_t len = read(fd, index->buffer, sizeof(index->buffer));
  close(fd);
  if (len <= 0)
    return;
  const char *text = index->buffer;
  const char *key_line = memmem(text, (size_t)len, "\nKEY: ", 6);
  if (!key_line)
    return;
  const char *key = key_line + 6;
  const char *key_end = memchr(key, '\n', (size_t)(text + len - key));
  if (!key_end)
    return;
  const char *headers = key_end + 1;
  size_t tags_len = 0;
  const char *tags =
      index_header(headers, (size_t)(text + len - headers), index->tag_header, &tags_len);
  index_put(index, path, key, (size_t)(key_end - key), tags, tags_len);
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
  index_rehash(index, index->slot_cap ? index->slot_cap : 1024);
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

static const char *index_after_scheme(const char *url) {
  const char *rest = strstr(url, "://");
  return rest ? rest + 3 : url;
}

void nginx_index_purge(struct nginx_index *index, const struct exec_item *item,
                       struct exec_outcome *outcome) {
  pcre2_code *regex = NULL;
  pcre2_match_data *match = NULL;
  if (item->operation == CDR__OPERATION__PURGE_REGEX) {
    int code;
    PCRE2_SIZE offset;
    regex = pcre2_compile((PCRE2_SPTR)item->target, PCRE2_ZERO_TERMINATED, 0, &code, &offset, NULL);
    match = regex ? pcre2_match_data_create_from_pattern(regex, NULL) : NULL;
    if (!match) {
      pcre2_code_free(regex);
      driver_outcome_failed(outcome, 0, CURLE_OK);
      snprintf(outcome->reason, sizeof(outcome->reason), "bad_regex");
      return;
    }
  }
  const char *prefix = index_after_scheme(item->target);
  size_t prefix_len = strlen(prefix);
  int unlink_error = 0;
  pthread_mutex_lock(&index->lock);
  bool readable = index_refresh(index);
  for (size_t e = 0; readable && e < index->entry_count; e++) {
    struct index_entry *entry = &index->entries[e];
    if (!entry->path)
      continue;
    bool hit = false;
    if (item->operation == CDR__OPERATION__PURGE_PREFIX)
      hit = strncmp(index_after_scheme(entry->key), prefix, prefix_len) == 0;
    else if (item->operation == CDR__OPERATION__PURGE_REGEX)
      hit =
          pcre2_match(regex, (PCRE2_SPTR)entry->key, PCRE2_ZERO_TERMINATED, 0, 0, match, NULL) >= 0;
    else if (item->operation == CDR__OPERATION__PURGE_TAG)
      hit = entry->tags && index_has_tag(entry->tags, item->target);
    if (!hit)
      continue;
    if (unlink(entry->path) != 0 && errno != ENOENT && !unlink_error)
      unlink_error = errno;
    else
      index_remove(index, entry->path);
  }
  pthread_mutex_unlock(&index->lock);
  pcre2_match_data_free(match);
  pcre2_code_free(regex);
  if (!readable || unlink_error) {
    driver_outcome_failed(outcome, 0, CURLE_OK);
    snprintf(outcome->reason, sizeof(outcome->reason), "%s",
             !readable ? "cache_dir_unreadable" : "cache_dir_not_writable");
    return;
  }
  outcome->outcome = CDR__OUTCOME__SUCCEEDED;
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
  if (index->inotify < 0 || !index->dir || !index->tag_header || !index_rehash(index, 1024)) {
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
  free(index->slots);
  free(index->watches);
  free(index->dir);
  free(index->tag_header);
  free(index);
}
