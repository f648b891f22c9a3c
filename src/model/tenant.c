/* tenant.c — tenants' names, host ownership, tag namespaces and quota amounts (tenant.h). */
#include "model/tenant.h"

#include "common/text_list.h"
#include "model/task.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

const struct tenant tenant_dev = {.name = "dev", .hosts = "*", .tag_prefix = "*"};

const char *tenant_quota_name(enum tenant_quota quota) {
  static const char *const names[QUOTA_COUNT] = {"purge_urls", "purge_patterns", "preload_urls"};
  return names[quota];
}

void tenant_quota_amount(const struct task *task, int64_t amount[QUOTA_COUNT]) {
  memset(amount, 0, QUOTA_COUNT * sizeof(*amount));
  if (task->type == TASK_PRELOAD) {
    amount[QUOTA_PRELOAD_URLS] = (int64_t)task->target_counts[TARGET_URL];
    return;
  }
  amount[QUOTA_PURGE_URLS] = (int64_t)task->target_counts[TARGET_URL];
  amount[QUOTA_PURGE_PATTERNS] =
      (int64_t)(task->target_counts[TARGET_PREFIX] + task->target_counts[TARGET_REGEX] +
                task->target_counts[TARGET_TAG]);
}

bool tenant_name_valid(const char *name) {
  size_t len = strlen(name);
  bool ok = len > 0 && len <= TENANT_NAME_MAX;
  for (size_t i = 0; ok && i < len; i++)
    ok = isalnum((unsigned char)name[i]) || name[i] == '-' || name[i] == '_' || name[i] == '.';
  return ok;
}

/* A host name: dot-separated labels of a-z 0-9 -, none empty. */
static bool tenant_host_name_valid(const char *host, size_t len) {
  if (len == 0 || len > 253 || host[0] == '.' || host[len - 1] == '.')
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = host[i];
    if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-' || c == '.'))
      return false;
    if (c == '.' && host[i + 1] == '.')
      return false;
  }
  return true;
}

bool tenant_hosts_normalize(char *hosts, const char **bad) {
  /* Lower-case, and drop the blanks around each entry (not inside one, which stays invalid). */
  char *out = hosts;
  for (const char *in = hosts; *in;) {
    while (*in == ' ' || *in == '\t')
      in++;
    const char *end = in + strcspn(in, ",");
    const char *last = end;
    while (last > in && (last[-1] == ' ' || last[-1] == '\t'))
      last--;
    while (in < last)
      *out++ = (char)tolower((unsigned char)*in++);
    in = end;
    if (*in == ',')
      *out++ = *in++;
  }
  *out = '\0';
  for (char *entry = hosts;;) {
    char *comma = strchr(entry, ',');
    size_t len = comma ? (size_t)(comma - entry) : strlen(entry);
    bool ok = (len == 1 && entry[0] == '*') ||
              (len > 2 && entry[0] == '*' && entry[1] == '.' &&
               tenant_host_name_valid(entry + 2, len - 2)) ||
              tenant_host_name_valid(entry, len);
    if (!ok) {
      *bad = entry;
      return false;
    }
    if (!comma)
      return true;
    entry = comma + 1;
  }
}

bool tenant_owns_host(const struct tenant *tenant, const char *host, size_t len) {
  for (const char *entry = tenant->hosts; entry && *entry;) {
    const char *comma = strchr(entry, ',');
    size_t entry_len = comma ? (size_t)(comma - entry) : strlen(entry);
    if (entry_len == 1 && entry[0] == '*')
      return true;
    if (entry_len > 2 && entry[0] == '*') {
      size_t suffix = entry_len - 1; /* ".domain" */
      if (len > suffix && memcmp(host + len - suffix, entry + 1, suffix) == 0)
        return true;
    } else if (entry_len == len && memcmp(entry, host, len) == 0) {
      return true;
    }
    entry = comma ? comma + 1 : NULL;
  }
  return false;
}

bool tenant_owns_every_host(const struct tenant *tenant) {
  return tenant->hosts && text_list_contains(tenant->hosts, ',', "*", 1);
}

bool tenant_may_purge_tag(const struct tenant *tenant, const char *tag, size_t len) {
  const char *prefix = tenant->tag_prefix;
  if (!prefix)
    return false;
  if (strcmp(prefix, "*") == 0)
    return true;
  size_t prefix_len = strlen(prefix);
  return len >= prefix_len && memcmp(tag, prefix, prefix_len) == 0;
}
