/* nginx_index.h — an index of an nginx cache directory: for every cache file its key (the URL)
 * and its tags (a response header such as Surrogate-Key), so prefix, regex and tag purges find
 * their files without reading the whole cache. The index is built by one scan the first time it is
 * used and then kept current from inotify events (every directory watched), which are drained
 * before each purge so a file cached before the purge started is always seen. An inotify queue
 * overflow triggers a rescan.
 *
 * Thread-safe (one mutex): purges run on libuv's thread pool. Blocking file I/O: never call it on
 * an event loop. */
#ifndef CDR_NGINX_INDEX_H
#define CDR_NGINX_INDEX_H

#include "agent/driver.h"

struct nginx_index;

/* Creates an empty index of dir (nothing is read yet); tags are read from the stored response
 * header tag_header (e.g. Surrogate-Key). NULL when out of memory or inotify cannot be used. */
struct nginx_index *nginx_index_create(const char *dir, const char *tag_header);

void nginx_index_destroy(struct nginx_index *index);

/* Deletes every cache file whose key is (PURGE_URL) or starts with (PURGE_PREFIX) item->target —
 * both compared after the scheme, byte for byte, so every Vary variant and the http and https
 * copies go — matches it (PURGE_REGEX, against the key as stored) or whose tags hold it
 * (PURGE_TAG). With item->verify it then applies the events that arrived meanwhile and looks
 * again: a matching file written before the purge began is deleted on a second round, and one
 * still there fails the item. Sets outcome: SUCCEEDED (verified with item->verify), or FAILED with
 * reason bad_regex / cache_dir_unreadable / cache_dir_not_writable / still_cached. */
void nginx_index_purge(struct nginx_index *index, const struct exec_item *item,
                       struct exec_outcome *outcome);

/* Whether a cache file's stored key is url byte for byte (scheme included: the copy visitors of
 * that scheme get), waiting up to wait_ms for it to appear: nginx renames a file into place as a
 * response ends, which may be just after the client got its last byte; each event that arrives
 * is applied at once. *readable is false when the directory could not be read. */
bool nginx_index_holds(struct nginx_index *index, const char *url, int wait_ms, bool *readable);

/* Files in the index (for benchmarks and tests); builds it first if needed. */
size_t nginx_index_size(struct nginx_index *index);

#endif
