/* task_request.c — validation of purge and preload request bodies into tasks. */
#include "engine/api/task_request.h"

#include "common/address.h"
#include "common/error.h"
#include "common/regex_armor.h"
#include "common/url.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  TAG_MAX_LENGTH = 256,
  GROUP_MAX_LENGTH = 64,
  GROUPS_MAX = 64,
  HEADERS_MAX = 32,
  HEADER_VALUE_MAX = 4096,
};

struct request_list {
  const char *field;
  enum target_kind kind;
};

static const struct request_list request_lists[TARGET_KIND_COUNT] = {
    {"urls", TARGET_URL},
    {"prefixes", TARGET_PREFIX},
    {"regexes", TARGET_REGEX},
    {"tags", TARGET_TAG},
};

/* Fields each request type accepts, besides its target lists. */
static const char *const purge_options[] = {"mode",       "nodes",  "callback",
                                            "deadline_s", "verify", NULL};
static const char *const preload_options[] = {"headers",    "nodes",  "callback",
                                              "deadline_s", "verify", NULL};

struct request_parser {
  enum task_type type;
  const struct tenant *tenant;
  const struct request_limits *limits;
  struct arena *arena;
  struct request_error *error;
  struct task *task;
  const char **seen; /* open-addressing set of target values already taken, for dedup */
  size_t seen_mask;  /* slots - 1; slots is a power of two */
};

__attribute__((format(printf, 4, 5))) static int
request_fail(struct request_error *error, int code, const char *field, const char *format, ...) {
  error->code = code;
  snprintf(error->field, sizeof(error->field), "%s", field);
  va_list args;
  va_start(args, format);
  vsnprintf(error->message, sizeof(error->message), format, args);
  va_end(args);
  return code;
}

static bool request_list_allowed(enum task_type type, enum target_kind kind) {
  return type == TASK_PURGE || kind == TARGET_URL;
}

static bool request_field_known(enum task_type type, const char *key) {
  for (size_t i = 0; i < TARGET_KIND_COUNT; i++) {
    if (strcmp(key, request_lists[i].field) == 0)
      return request_list_allowed(type, request_lists[i].kind);
  }
  for (const char *const *o = type == TASK_PURGE ? purge_options : preload_options; *o; o++) {
    if (strcmp(key, *o) == 0)
      return true;
  }
  return false;
}

/* Refuses unknown fields, checks that target lists are arrays and that their sum is within limits.
 */
static int request_check_shape(struct request_parser *p, json_t *body, size_t *total) {
  const char *key;
  json_t *value;
  json_object_foreach(body, key, value) {
    if (!request_field_known(p->type, key))
      return request_fail(p->error, CDR_EUNKNOWN_FIELD, key, "unknown field '%s' for a %s request",
                          key, task_type_name(p->type));
  }
  *total = 0;
  for (size_t i = 0; i < TARGET_KIND_COUNT; i++) {
    json_t *list = json_object_get(body, request_lists[i].field);
    if (!list)
      continue;
    if (!json_is_array(list))
      return request_fail(p->error, CDR_EINVALID_TYPE, request_lists[i].field,
                          "%s must be an array of strings", request_lists[i].field);
    *total += json_array_size(list);
    if (*total > p->limits->max_items)
      return request_fail(p->error, CDR_ETOO_MANY_ITEMS, request_lists[i].field,
                          "the request has more than %zu items "
                          "(limits.max_items_per_request); split it into several tasks",
                          p->limits->max_items);
  }
  if (*total == 0) {
    const char *hint = p->type == TASK_PURGE
                           ? "a purge needs at least one entry in urls, prefixes, regexes or tags"
                           : "a preload needs at least one entry in urls";
    return request_fail(p->error, CDR_EEMPTY_TARGETS, "urls", "%s", hint);
  }
  return 0;
}

static uint64_t request_hash(enum target_kind kind, const char *s) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)kind; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* Adds value to the dedup set; returns false when an equal target of this kind is already there. */
static bool request_seen_add(struct request_parser *p, enum target_kind kind, const char *value) {
  size_t slot = (size_t)request_hash(kind, value) & p->seen_mask;
  while (p->seen[slot]) {
    /* The kind is stored in the byte just before the value (see request_store_value). */
    if ((enum target_kind)p->seen[slot][-1] == kind && strcmp(p->seen[slot], value) == 0)
      return false;
    slot = (slot + 1) & p->seen_mask;
  }
  p->seen[slot] = value;
  return true;
}

/* Copies value into the arena behind one byte holding its kind, for request_seen_add. */
static const char *request_store_value(struct request_parser *p, enum target_kind kind,
                                       const char *value, size_t len) {
  char *copy = arena_alloc(p->arena, len + 2);
  if (!copy)
    return NULL;
  copy[0] = (char)kind;
  memcpy(copy + 1, value, len);
  copy[len + 1] = '\0';
  return copy + 1;
}

static int request_check_url(struct request_parser *p, enum target_kind kind, const char *field,
                             const char *s, size_t len, const char **value) {
  struct url_normalized url;
  const char *why = NULL;
  int rc = url_normalize(s, len, p->limits->max_url_length, p->arena, &url, &why);
  if (rc == CDR_ENOMEM)
    return request_fail(p->error, rc, field, "the request is too large to hold in memory");
  if (rc == CDR_EURL_TOO_LONG)
    return request_fail(p->error, rc, field, "%s is %zu bytes, over limits.max_url_length (%zu)",
                        field, len, p->limits->max_url_length);
  if (rc)
    return request_fail(p->error, kind == TARGET_PREFIX ? CDR_EINVALID_PREFIX : rc, field, "%s %s",
                        field, why);
  if (kind == TARGET_PREFIX && (!url.path_given || url.has_query))
    return request_fail(p->error, CDR_EINVALID_PREFIX, field,
                        "%s needs a path after the host and no query, like "
                        "https://example.com/images/",
                        field);
  if (!tenant_owns_host(p->tenant, url.text + url.host_offset, url.host_length))
    return request_fail(p->error, CDR_EHOST_NOT_OWNED, field,
                        "%s: tenant '%s' does not own the host '%.*s'", field, p->tenant->name,
                        (int)url.host_length, url.text + url.host_offset);
  *value = request_store_value(p, kind, url.text, url.length);
  return 0;
}

/* Fails with the PCRE2 reason unless s[0..len) compiles; what names the pattern in the message. */
static int request_compile_check(struct request_parser *p, const char *field, const char *what,
                                 const char *s, size_t len) {
  int code;
  PCRE2_SIZE offset;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, len, 0, &code, &offset, NULL);
  if (re) {
    pcre2_code_free(re);
    return 0;
  }
  PCRE2_UCHAR why[160];
  pcre2_get_error_message(code, why, sizeof(why));
  return request_fail(p->error, CDR_EINVALID_REGEX, field,
                      "%s%s does not compile as a PCRE2 pattern: %s at offset %zu", field, what,
                      (const char *)why, (size_t)offset);
}

/* Confines the armored regex s to the literal host it starts with (see task_request.h): checks
 * the form and the host, and writes the confined pattern into the arena. The host runs to the
 * first '/' and is never cut short: a host the check did not read whole is refused. */
static int request_confine_regex(struct request_parser *p, const char *field, const char *s,
                                 size_t len, const char **value) {
  static const char *const starts[] = {"^https?://", "^https://", "^http://"};
  size_t at = 0;
  for (size_t i = 0; i < 3 && !at; i++) {
    size_t n = strlen(starts[i]);
    if (len > n && memcmp(s, starts[i], n) == 0)
      at = n;
  }
  char host[URL_HOST_MAX + 1];
  size_t host_len = 0;
  bool well_formed = at != 0;
  while (well_formed && at < len && s[at] != '/') {
    if (host_len == URL_HOST_MAX)
      return request_fail(p->error, CDR_EINVALID_REGEX, field,
                          "%s has a host longer than %d characters", field, URL_HOST_MAX);
    if (s[at] == '\\' && at + 1 < len && s[at + 1] == '.') {
      host[host_len++] = '.';
      at += 2;
    } else if (islower((unsigned char)s[at]) || isdigit((unsigned char)s[at]) || s[at] == '-') {
      host[host_len++] = s[at++];
    } else {
      well_formed = false;
    }
  }
  if (!well_formed || at >= len || host_len == 0)
    return request_fail(p->error, CDR_EINVALID_REGEX, field,
                        "%s must start with ^https?://, then a host written literally in lower "
                        "case (dots as \\.), then /: e.g. ^https?://www\\.example\\.com/img/",
                        field);
  if (!tenant_owns_host(p->tenant, host, host_len))
    return request_fail(p->error, CDR_EHOST_NOT_OWNED, field,
                        "%s: tenant '%s' does not own the host '%.*s'", field, p->tenant->name,
                        (int)host_len, host);
  /* The path part must be a pattern on its own: then it is lexed alike inside the group below,
   * so its parentheses are its own and nothing in it can close the group or reach the host. */
  const char *rest = s + at + 1;
  size_t rest_len = len - at - 1;
  int rc = request_compile_check(p, field, " after the host", rest, rest_len);
  if (rc)
    return rc;
  char *confined = arena_alloc(p->arena, len + 6);
  if (!confined)
    return request_fail(p->error, CDR_ENOMEM, field, "the request is too large to hold");
  int n = snprintf(confined, len + 6, "%.*s(?:%.*s)", (int)(at + 1), s, (int)rest_len, rest);
  rc = request_compile_check(p, field, "", confined, (size_t)n);
  if (!rc)
    *value = request_store_value(p, TARGET_REGEX, confined, (size_t)n);
  return rc;
}

/* The regex s[0..len) as every cache takes it (regex_armor.h), in the arena: the form validated
 * below is byte for byte the form the caches interpret, so no rewrite can change what was
 * checked. It is armored in a scratch buffer sized for the worst case (a byte quoted by
 * \Q...\E becomes \E\xHH\Q) and only what it came to is kept, so a body of regexes costs the
 * arena about what it did unarmored. NULL when it holds a NUL byte (*why says) or memory is out. */
static const char *request_armor_regex(struct request_parser *p, const char *s, size_t len,
                                       const char **why) {
  *why = NULL;
  if (memchr(s, '\0', len)) {
    *why = "must not contain a NUL byte";
    return NULL;
  }
  size_t size = 8 * len + 1;
  char *scratch = malloc(size);
  const char *armored = scratch && regex_armor(s, NULL, scratch, size) /* s ends at len */
                            ? arena_strndup(p->arena, scratch, strlen(scratch))
                            : NULL;
  free(scratch);
  return armored;
}

static int request_check_regex(struct request_parser *p, const char *field, const char *s,
                               size_t len, const char **value) {
  if (len == 0 || len > p->limits->max_url_length)
    return request_fail(p->error, CDR_EINVALID_REGEX, field,
                        "%s must be 1..%zu bytes (limits.max_url_length)", field,
                        p->limits->max_url_length);
  const char *why;
  const char *armored = request_armor_regex(p, s, len, &why);
  if (!armored)
    return why ? request_fail(p->error, CDR_EINVALID_REGEX, field, "%s %s", field, why)
               : request_fail(p->error, CDR_ENOMEM, field, "the request is too large to hold");
  size_t armored_len = strlen(armored);
  if (!tenant_owns_every_host(p->tenant))
    return request_confine_regex(p, field, armored, armored_len, value);
  int rc = request_compile_check(p, field, "", armored, armored_len);
  if (!rc)
    *value = request_store_value(p, TARGET_REGEX, armored, armored_len);
  return rc;
}

static int request_check_tag(struct request_parser *p, const char *field, const char *s, size_t len,
                             const char **value) {
  bool ok = len > 0 && len <= TAG_MAX_LENGTH;
  for (size_t i = 0; ok && i < len; i++)
    ok = s[i] > 0x20 && s[i] < 0x7f && s[i] != ',';
  if (!ok)
    return request_fail(p->error, CDR_EINVALID_TAG, field,
                        "%s must be 1..%d printable ASCII characters without spaces or commas",
                        field, TAG_MAX_LENGTH);
  if (!tenant_may_purge_tag(p->tenant, s, len) && p->tenant->tag_prefix)
    return request_fail(p->error, CDR_ETAG_NOT_ALLOWED, field,
                        "%s: tenant '%s' may purge only tags starting with '%s'", field,
                        p->tenant->name, p->tenant->tag_prefix);
  if (!tenant_may_purge_tag(p->tenant, s, len))
    return request_fail(p->error, CDR_ETAG_NOT_ALLOWED, field,
                        "%s: tenant '%s' has no tag namespace (an operator gives it one with "
                        "cdnrefresh-engine tenant set NAME --tag-prefix PREFIX)",
                        field, p->tenant->name);
  *value = request_store_value(p, TARGET_TAG, s, len);
  return 0;
}

static int request_take_targets(struct request_parser *p, json_t *body) {
  struct task *task = p->task;
  for (size_t i = 0; i < TARGET_KIND_COUNT; i++) {
    const struct request_list *list_spec = &request_lists[i];
    json_t *list = json_object_get(body, list_spec->field);
    size_t index;
    json_t *element;
    json_array_foreach(list, index, element) {
      char field[48];
      snprintf(field, sizeof(field), "%s[%zu]", list_spec->field, index);
      if (!json_is_string(element))
        return request_fail(p->error, CDR_EINVALID_TYPE, field, "%s must be a string", field);
      const char *s = json_string_value(element);
      size_t len = json_string_length(element);
      const char *value = NULL;
      int rc;
      if (list_spec->kind == TARGET_URL || list_spec->kind == TARGET_PREFIX)
        rc = request_check_url(p, list_spec->kind, field, s, len, &value);
      else if (list_spec->kind == TARGET_REGEX)
        rc = request_check_regex(p, field, s, len, &value);
      else
        rc = request_check_tag(p, field, s, len, &value);
      if (rc)
        return rc;
      if (!value)
        return request_fail(p->error, CDR_ENOMEM, field, "the request is too large to hold");
      if (!request_seen_add(p, list_spec->kind, value))
        continue;
      task->targets[task->target_count++] =
          (struct task_target){.kind = list_spec->kind, .state = ITEM_PENDING, .value = value};
      task->target_counts[list_spec->kind]++;
    }
  }
  return 0;
}

/* Stores value as compact JSON text in the arena (the task keeps groups and headers as text). */
static int request_keep_json(struct request_parser *p, json_t *value, const char *field,
                             const char **out) {
  char *text = json_dumps(value, JSON_COMPACT);
  *out = text ? arena_strdup(p->arena, text) : NULL;
  free(text);
  return *out ? 0 : request_fail(p->error, CDR_ENOMEM, field, "out of memory");
}

static bool request_name_char(char c) {
  return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

static int request_take_nodes(struct request_parser *p, json_t *nodes) {
  if (!json_is_object(nodes))
    return request_fail(p->error, CDR_EINVALID_TYPE, "nodes",
                        "nodes must be an object like {\"groups\":[\"eu\"]}");
  const char *key;
  json_t *value;
  json_object_foreach(nodes, key, value) {
    if (strcmp(key, "groups") != 0)
      return request_fail(p->error, CDR_EUNKNOWN_FIELD, "nodes", "unknown field 'nodes.%s'", key);
  }
  json_t *groups = json_object_get(nodes, "groups");
  if (!groups)
    return 0;
  if (!json_is_array(groups) || json_array_size(groups) == 0 ||
      json_array_size(groups) > GROUPS_MAX)
    return request_fail(p->error, CDR_EINVALID_TYPE, "nodes.groups",
                        "nodes.groups must be an array of 1..%d group names", GROUPS_MAX);
  size_t index;
  json_t *group;
  json_array_foreach(groups, index, group) {
    const char *name = json_string_value(group);
    size_t len = name ? json_string_length(group) : 0;
    bool ok = name && len > 0 && len <= GROUP_MAX_LENGTH;
    for (size_t i = 0; ok && i < len; i++)
      ok = request_name_char(name[i]);
    if (!ok) {
      char field[48];
      snprintf(field, sizeof(field), "nodes.groups[%zu]", index);
      return request_fail(p->error, CDR_EINVALID_VALUE, field,
                          "%s must be 1..%d characters of A-Z a-z 0-9 . _ -", field,
                          GROUP_MAX_LENGTH);
    }
  }
  return request_keep_json(p, groups, "nodes", &p->task->node_groups_json);
}

/* Header names a preload may not set: they belong to the connection or to the URL. */
static bool request_header_reserved(const char *name) {
  static const char *const reserved[] = {
      "host", "connection", "content-length", "transfer-encoding", "upgrade", "te", NULL};
  for (const char *const *r = reserved; *r; r++) {
    if (strcasecmp(name, *r) == 0)
      return true;
  }
  return false;
}

static int request_take_headers(struct request_parser *p, json_t *headers) {
  if (!json_is_object(headers) || json_object_size(headers) > HEADERS_MAX)
    return request_fail(p->error, CDR_EINVALID_TYPE, "headers",
                        "headers must be an object of at most %d \"Name\": \"value\" strings",
                        HEADERS_MAX);
  const char *name;
  json_t *value;
  json_object_foreach(headers, name, value) {
    char field[96];
    snprintf(field, sizeof(field), "headers.%.80s", name);
    bool name_ok = name[0] != '\0';
    for (const char *c = name; name_ok && *c; c++)
      name_ok = isalnum((unsigned char)*c) || strchr("!#$%&'*+-.^_`|~", *c);
    if (!name_ok || request_header_reserved(name))
      return request_fail(p->error, CDR_EINVALID_VALUE, field,
                          "%s is not a header name a preload may set", field);
    const char *text = json_string_value(value);
    if (!text || json_string_length(value) > HEADER_VALUE_MAX || strpbrk(text, "\r\n"))
      return request_fail(p->error, CDR_EINVALID_VALUE, field,
                          "%s must be a string of at most %d bytes without line breaks", field,
                          HEADER_VALUE_MAX);
  }
  return request_keep_json(p, headers, "headers", &p->task->headers_json);
}

static int request_take_options(struct request_parser *p, json_t *body) {
  json_t *mode = json_object_get(body, "mode");
  if (mode && (!json_is_string(mode) || task_mode_parse(json_string_value(mode), &p->task->mode)))
    return request_fail(p->error, CDR_EINVALID_VALUE, "mode",
                        "mode must be \"delete\" or \"invalidate\"");
  json_t *verify = json_object_get(body, "verify");
  if (verify && !json_is_boolean(verify))
    return request_fail(p->error, CDR_EINVALID_TYPE, "verify", "verify must be true or false");
  p->task->verify = !verify || json_is_true(verify);

  json_t *deadline = json_object_get(body, "deadline_s");
  if (deadline) {
    if (!json_is_integer(deadline) || json_integer_value(deadline) < 1 ||
        json_integer_value(deadline) > p->limits->max_deadline_s)
      return request_fail(p->error, CDR_EINVALID_VALUE, "deadline_s",
                          "deadline_s must be an integer 1..%lld (tasks.max_deadline_s)",
                          (long long)p->limits->max_deadline_s);
    p->task->deadline_s = json_integer_value(deadline);
  }

  json_t *callback = json_object_get(body, "callback");
  if (callback) {
    struct url_normalized url;
    const char *why = "must be a string";
    int rc = json_is_string(callback)
                 ? url_normalize(json_string_value(callback), json_string_length(callback),
                                 p->limits->max_url_length, p->arena, &url, &why)
                 : CDR_EINVALID_URL;
    if (rc)
      return request_fail(p->error, rc == CDR_EURL_TOO_LONG ? rc : CDR_EINVALID_URL, "callback",
                          "callback %s", why);
    if (address_text_is_internal(url.text + url.host_offset, url.host_length)) {
      struct sockaddr_storage address;
      char host[80];
      snprintf(host, sizeof(host), "%.*s:0", (int)url.host_length, url.text + url.host_offset);
      bool allowed = address_parse(host, &address) == 0 &&
                     address_in_list((const struct sockaddr *)&address,
                                     p->limits->callback_allow ? p->limits->callback_allow : "");
      if (!allowed)
        return request_fail(p->error, CDR_EINVALID_VALUE, "callback",
                            "callback points to a loopback, link-local or private address; allow "
                            "it with callbacks.allow_internal");
    }
    p->task->callback = url.text;
    p->task->callback_state = CALLBACK_PENDING;
  }

  json_t *nodes = json_object_get(body, "nodes");
  if (nodes) {
    int rc = request_take_nodes(p, nodes);
    if (rc)
      return rc;
  }
  json_t *headers = json_object_get(body, "headers");
  return headers ? request_take_headers(p, headers) : 0;
}

static int request_build(struct request_parser *p, json_t *body) {
  if (!json_is_object(body))
    return request_fail(p->error, CDR_EINVALID_TYPE, "", "the body must be a JSON object");
  size_t total = 0;
  int rc = request_check_shape(p, body, &total);
  if (rc)
    return rc;

  size_t slots = 16;
  while (slots < total * 2)
    slots *= 2;
  struct task *task = arena_alloc(p->arena, sizeof(*task));
  struct task_target *targets = arena_alloc(p->arena, total * sizeof(*targets));
  p->seen = arena_alloc(p->arena, slots * sizeof(*p->seen));
  if (!task || !targets || !p->seen)
    return request_fail(p->error, CDR_ENOMEM, "", "the request is too large to hold in memory");
  memset(p->seen, 0, slots * sizeof(*p->seen));
  p->seen_mask = slots - 1;
  memset(task, 0, sizeof(*task));
  task->type = p->type;
  task->state = TASK_QUEUED;
  task->mode = TASK_MODE_DELETE;
  task->deadline_s = p->limits->default_deadline_s;
  task->targets = targets;
  p->task = task;

  rc = request_take_targets(p, body);
  return rc ? rc : request_take_options(p, body);
}

int task_request_parse(enum task_type type, const char *body, size_t len,
                       const struct request_limits *limits, const struct tenant *tenant,
                       struct arena *arena, struct task **out, struct request_error *error) {
  json_error_t json_error;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &json_error);
  if (!root)
    return request_fail(error, CDR_EMALFORMED_JSON, "",
                        "the body is not valid JSON: %s (line %d, column %d)", json_error.text,
                        json_error.line, json_error.column);
  struct request_parser parser = {
      .type = type, .tenant = tenant, .limits = limits, .arena = arena, .error = error};
  int rc = request_build(&parser, root);
  json_decref(root);
  if (rc)
    return rc;
  parser.task->tenant = arena_strdup(arena, tenant->name);
  if (!parser.task->tenant)
    return request_fail(error, CDR_ENOMEM, "", "out of memory");
  *out = parser.task;
  return 0;
}
