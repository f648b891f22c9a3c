/* tenant_admin.c — the tenant command: parses its arguments, makes keys and secrets, and writes
 * tenants to the store in one transaction per command. */
#include "engine/tenant_admin.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/settings.h"
#include "engine/engine_config.h"
#include "store/store.h"

#include <getopt.h>
#include <ini.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the command line asked for. A field left at its "unset" value keeps the stored one. */
struct tenant_admin_options {
  char data_dir[SETTING_STRING_MAX];
  char store_url[SETTING_STRING_MAX]; /* empty: SQLite in data_dir */
  const char *hosts;                  /* NULL: unset */
  const char *tag_prefix;             /* NULL: unset */
  bool no_tags, rotate_secret, json;
  int64_t quota[QUOTA_COUNT]; /* -1: unset */
  int64_t rate_requests, rate_urls;
};

static void tenant_admin_usage(FILE *out) {
  fprintf(out,
          "usage: cdnrefresh-engine tenant add NAME --hosts LIST [limits] [--data-dir DIR | "
          "--store ADDRESS]\n"
          "       cdnrefresh-engine tenant set NAME [--hosts LIST] [limits] [--rotate-secret]\n"
          "       cdnrefresh-engine tenant list [--json]\n"
          "       cdnrefresh-engine tenant show NAME [--json]\n"
          "       cdnrefresh-engine tenant remove NAME\n"
          "\n"
          "Tenants sign API requests with an access key and a secret (docs/API.md, Signing) and\n"
          "may purge and preload only the hosts they own. `add` makes the key and the secret and\n"
          "prints them once; `set --rotate-secret` makes a new secret. Running engines take a\n"
          "change within a second.\n"
          "\n"
          "  --hosts LIST              hosts the tenant owns, comma-separated: example.com,\n"
          "                            *.example.com (every subdomain), or * (every host)\n"
          "  --tag-prefix P            tag purges allowed for tags starting with P (* for any);\n"
          "                            without one the tenant cannot purge by tag\n"
          "  --no-tags                 (set) take the tag namespace away\n"
          "  --quota-purge-urls N      URLs purged per UTC day (0: unlimited, the default)\n"
          "  --quota-purge-patterns N  prefixes, regexes and tags purged per day\n"
          "  --quota-preload-urls N    URLs preloaded per day\n"
          "  --rate-requests N         API requests per second (0: unlimited)\n"
          "  --rate-urls N             URLs (all targets) submitted per second\n"
          "  --data-dir DIR            the engine's data dir (default /var/lib/cdnrefresh)\n"
          "  --store ADDRESS           the engine's store, when it is not the data "
          "dir's: " STORE_ADDRESSES "\n"
          "  --config FILE             take the data dir from an engine config file\n"
          "  --json                    print JSON\n"
          "\n"
          "Example:\n"
          "  cdnrefresh-engine tenant add acme --hosts 'example.com,*.example.com' \\\n"
          "      --tag-prefix acme- --quota-purge-urls 100000 --rate-requests 50\n");
}

static int tenant_admin_ini_entry(void *user, const char *section, const char *key,
                                  const char *value) {
  struct tenant_admin_options *options = user;
  if (strcmp(section, "engine") == 0 && strcmp(key, "data_dir") == 0)
    snprintf(options->data_dir, sizeof(options->data_dir), "%s", value);
  if (strcmp(section, "store") == 0 && strcmp(key, "url") == 0)
    snprintf(options->store_url, sizeof(options->store_url), "%s", value);
  return 1;
}

static bool tenant_admin_number(const char *text, int64_t *out) {
  char *end;
  long long value = strtoll(text, &end, 10);
  if (!*text || *end || value < 0 || value > 1000000000000LL)
    return false;
  *out = value;
  return true;
}

/* Parses the options after the command and its NAME. Returns 0 or 2 (usage, printed). */
static int tenant_admin_parse(int argc, char **argv, struct tenant_admin_options *options) {
  enum {
    OPT_HOSTS = 256,
    OPT_TAGS,
    OPT_NO_TAGS,
    OPT_ROTATE,
    OPT_QUOTA,
    OPT_RATE_REQUESTS = 264,
    OPT_RATE_URLS,
    OPT_DATA_DIR,
    OPT_STORE,
    OPT_CONFIG,
    OPT_JSON,
    OPT_HELP
  };
  static const struct option long_options[] = {
      {"hosts", required_argument, NULL, OPT_HOSTS},
      {"tag-prefix", required_argument, NULL, OPT_TAGS},
      {"no-tags", no_argument, NULL, OPT_NO_TAGS},
      {"rotate-secret", no_argument, NULL, OPT_ROTATE},
      {"quota-purge-urls", required_argument, NULL, OPT_QUOTA + QUOTA_PURGE_URLS},
      {"quota-purge-patterns", required_argument, NULL, OPT_QUOTA + QUOTA_PURGE_PATTERNS},
      {"quota-preload-urls", required_argument, NULL, OPT_QUOTA + QUOTA_PRELOAD_URLS},
      {"rate-requests", required_argument, NULL, OPT_RATE_REQUESTS},
      {"rate-urls", required_argument, NULL, OPT_RATE_URLS},
      {"data-dir", required_argument, NULL, OPT_DATA_DIR},
      {"store", required_argument, NULL, OPT_STORE},
      {"config", required_argument, NULL, OPT_CONFIG},
      {"json", no_argument, NULL, OPT_JSON},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0}};
  snprintf(options->data_dir, sizeof(options->data_dir), "/var/lib/cdnrefresh");
  for (int i = 0; i < QUOTA_COUNT; i++)
    options->quota[i] = -1;
  options->rate_requests = options->rate_urls = -1;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
    bool ok = true;
    switch (c) {
    case OPT_HOSTS: options->hosts = optarg; break;
    case OPT_TAGS: options->tag_prefix = optarg; break;
    case OPT_NO_TAGS: options->no_tags = true; break;
    case OPT_ROTATE: options->rotate_secret = true; break;
    case OPT_QUOTA + QUOTA_PURGE_URLS:
    case OPT_QUOTA + QUOTA_PURGE_PATTERNS:
    case OPT_QUOTA + QUOTA_PRELOAD_URLS:
      ok = tenant_admin_number(optarg, &options->quota[c - OPT_QUOTA]);
      break;
    case OPT_RATE_REQUESTS: ok = tenant_admin_number(optarg, &options->rate_requests); break;
    case OPT_RATE_URLS: ok = tenant_admin_number(optarg, &options->rate_urls); break;
    case OPT_DATA_DIR: snprintf(options->data_dir, sizeof(options->data_dir), "%s", optarg); break;
    case OPT_STORE: snprintf(options->store_url, sizeof(options->store_url), "%s", optarg); break;
    case OPT_CONFIG:
      if (ini_parse(optarg, tenant_admin_ini_entry, options) != 0) {
        fprintf(stderr, "cdnrefresh-engine tenant: cannot read the config file %s\n", optarg);
        return 2;
      }
      break;
    case OPT_JSON: options->json = true; break;
    case OPT_HELP: tenant_admin_usage(stdout); exit(0);
    default: tenant_admin_usage(stderr); return 2;
    }
    if (!ok) {
      fprintf(stderr, "cdnrefresh-engine tenant: %s needs a whole number 0..10^12, got '%s'\n",
              argv[optind - 1], optarg);
      return 2;
    }
  }
  if (options->tag_prefix && options->no_tags) {
    fprintf(stderr, "cdnrefresh-engine tenant: --tag-prefix and --no-tags go against each other\n");
    return 2;
  }
  if (options->tag_prefix &&
      (!options->tag_prefix[0] || strlen(options->tag_prefix) > TENANT_TAG_PREFIX_MAX)) {
    fprintf(stderr, "cdnrefresh-engine tenant: --tag-prefix must be 1..%d characters\n",
            TENANT_TAG_PREFIX_MAX);
    return 2;
  }
  return 0;
}

/* Fills out with random characters from alphabet (of 16 or 32 characters). */
static int tenant_admin_random(char *out, size_t len, const char *alphabet, unsigned mask) {
  unsigned char bytes[64];
  if (len > sizeof(bytes) || RAND_bytes(bytes, (int)len) != 1)
    return CDR_EINTERNAL;
  for (size_t i = 0; i < len; i++)
    out[i] = alphabet[bytes[i] & mask];
  out[len] = '\0';
  return 0;
}

static int tenant_admin_new_secret(char secret[TENANT_SECRET_LENGTH + 1]) {
  return tenant_admin_random(secret, TENANT_SECRET_LENGTH, "0123456789abcdef", 15);
}

static int tenant_admin_new_key(char key[TENANT_KEY_LENGTH + 1]) {
  key[0] = 'A';
  key[1] = 'K';
  return tenant_admin_random(key + 2, TENANT_KEY_LENGTH - 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                             31);
}

/* Applies the options that were given to tenant. hosts_buffer holds the normalised host list.
 * Returns 0 or 2 (usage, printed). */
static int tenant_admin_apply(const struct tenant_admin_options *options, struct tenant *tenant,
                              char *hosts_buffer, size_t hosts_size) {
  if (options->hosts) {
    const char *bad = NULL;
    if (strlen(options->hosts) >= hosts_size) {
      fprintf(stderr, "cdnrefresh-engine tenant: --hosts is longer than %zu bytes\n",
              hosts_size - 1);
      return 2;
    }
    snprintf(hosts_buffer, hosts_size, "%s", options->hosts);
    if (!tenant_hosts_normalize(hosts_buffer, &bad)) {
      fprintf(stderr,
              "cdnrefresh-engine tenant: --hosts entry '%.*s' is not a host name, *.domain or *\n",
              (int)strcspn(bad, ","), bad);
      return 2;
    }
    tenant->hosts = hosts_buffer;
  }
  if (options->tag_prefix)
    tenant->tag_prefix = options->tag_prefix;
  if (options->no_tags)
    tenant->tag_prefix = NULL;
  for (int i = 0; i < QUOTA_COUNT; i++) {
    if (options->quota[i] >= 0)
      tenant->quota[i] = options->quota[i];
  }
  if (options->rate_requests >= 0)
    tenant->rate_requests = options->rate_requests;
  if (options->rate_urls >= 0)
    tenant->rate_urls = options->rate_urls;
  return 0;
}

static json_t *tenant_admin_json(const struct tenant *t, bool with_secret) {
  json_t *quotas = json_object();
  for (int i = 0; i < QUOTA_COUNT; i++)
    json_object_set_new(quotas, tenant_quota_name((enum tenant_quota)i), json_integer(t->quota[i]));
  json_t *out = json_pack(
      "{s:s,s:s,s:s,s:o,s:o,s:I,s:I}", "name", t->name, "access_key", t->access_key, "hosts",
      t->hosts, "tag_prefix", t->tag_prefix ? json_string(t->tag_prefix) : json_null(), "quotas",
      quotas, "rate_requests", (json_int_t)t->rate_requests, "rate_urls", (json_int_t)t->rate_urls);
  if (with_secret)
    json_object_set_new(out, "secret", json_string(t->secret));
  return out;
}

static void tenant_admin_print(const struct tenant *t, bool json, bool with_secret) {
  if (json) {
    json_t *out = tenant_admin_json(t, with_secret);
    json_dumpf(out, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(out);
    return;
  }
  printf("name:        %s\naccess_key:  %s\n", t->name, t->access_key);
  if (with_secret)
    printf("secret:      %s   (shown once: keep it now)\n", t->secret);
  printf("hosts:       %s\ntag_prefix:  %s\n", t->hosts, t->tag_prefix ? t->tag_prefix : "-");
  for (int i = 0; i < QUOTA_COUNT; i++)
    printf("quota %-14s %lld/day%s\n", tenant_quota_name((enum tenant_quota)i),
           (long long)t->quota[i], t->quota[i] ? "" : " (unlimited)");
  printf("rate requests: %lld/s%s\nrate urls:     %lld/s%s\n", (long long)t->rate_requests,
         t->rate_requests ? "" : " (unlimited)", (long long)t->rate_urls,
         t->rate_urls ? "" : " (unlimited)");
}

static void tenant_admin_print_table(const struct tenant *tenants, size_t count, bool json) {
  if (json) {
    json_t *list = json_array();
    for (size_t i = 0; i < count; i++)
      json_array_append_new(list, tenant_admin_json(&tenants[i], false));
    json_dumpf(list, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(list);
    return;
  }
  if (count == 0) {
    printf("no tenants (add one with: cdnrefresh-engine tenant add NAME --hosts LIST)\n");
    return;
  }
  printf("%-20s %-26s %-10s %s\n", "NAME", "ACCESS_KEY", "TAGS", "HOSTS");
  for (size_t i = 0; i < count; i++)
    printf("%-20s %-26s %-10s %s\n", tenants[i].name, tenants[i].access_key,
           tenants[i].tag_prefix ? tenants[i].tag_prefix : "-", tenants[i].hosts);
}

/* Finds tenant name among the loaded ones. */
static struct tenant *tenant_admin_find(struct tenant *tenants, size_t count, const char *name) {
  for (size_t i = 0; i < count; i++) {
    if (strcmp(tenants[i].name, name) == 0)
      return &tenants[i];
  }
  return NULL;
}

/* Runs one command against an open store inside one transaction (for writes). */
static int tenant_admin_run(struct store *store, const char *command, const char *name,
                            const struct tenant_admin_options *options, struct arena *arena) {
  struct tenant *tenants = NULL;
  size_t count = 0;
  char hosts[TENANT_HOSTS_MAX + 1];
  char key[TENANT_KEY_LENGTH + 1], secret[TENANT_SECRET_LENGTH + 1];
  int rc = store_begin(store);
  if (!rc)
    rc = store_tenants_load(store, arena, &tenants, &count);
  struct tenant *found = rc || !name ? NULL : tenant_admin_find(tenants, count, name);
  if (!rc && name && !found && strcmp(command, "add") != 0)
    rc = CDR_ETENANT_NOT_FOUND;
  if (rc)
    goto out;
  if (strcmp(command, "list") == 0) {
    tenant_admin_print_table(tenants, count, options->json);
  } else if (strcmp(command, "show") == 0) {
    tenant_admin_print(found, options->json, false);
  } else if (strcmp(command, "remove") == 0) {
    rc = store_tenant_delete(store, name);
    if (!rc && (rc = store_commit(store)) == 0)
      printf("tenant %s removed (its tasks stay)\n", name);
  } else {
    bool add = strcmp(command, "add") == 0;
    struct tenant tenant = found && !add ? *found : (struct tenant){.name = name};
    if (add && !options->hosts) {
      fprintf(stderr, "cdnrefresh-engine tenant add: --hosts is required\n");
      rc = 2;
      goto out;
    }
    if ((rc = tenant_admin_apply(options, &tenant, hosts, sizeof(hosts))))
      goto out;
    if (add || options->rotate_secret) {
      if ((rc = tenant_admin_new_secret(secret)) || (add && (rc = tenant_admin_new_key(key))))
        goto out;
      tenant.secret = secret;
    }
    if (add) {
      tenant.access_key = key;
      tenant.created_ms = clock_now_ms();
      rc = store_tenant_insert(store, &tenant);
    } else {
      rc = store_tenant_update(store, &tenant);
    }
    if (!rc && (rc = store_commit(store)) == 0)
      tenant_admin_print(&tenant, options->json, add || options->rotate_secret);
  }
out:
  store_rollback(store);
  return rc;
}

int tenant_admin_main(int argc, char **argv) {
  const char *command = argc > 1 ? argv[1] : "";
  static const char *const commands[] = {"add", "set", "list", "show", "remove", NULL};
  bool known = false;
  for (const char *const *c = commands; *c; c++)
    known = known || strcmp(command, *c) == 0;
  if (!known) {
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0) {
      tenant_admin_usage(stdout);
      return 0;
    }
    tenant_admin_usage(stderr);
    return 2;
  }
  bool needs_name = strcmp(command, "list") != 0;
  const char *name = needs_name && argc > 2 && argv[2][0] != '-' ? argv[2] : NULL;
  if (needs_name && (!name || !tenant_name_valid(name))) {
    fprintf(stderr,
            "cdnrefresh-engine tenant %s: needs a NAME of 1..%d characters of A-Z a-z 0-9 . _ -\n",
            command, TENANT_NAME_MAX);
    return 2;
  }
  struct tenant_admin_options options = {0};
  int shift = needs_name ? 2 : 1;
  int rc = tenant_admin_parse(argc - shift, argv + shift, &options);
  if (rc)
    return rc;
  if (optind < argc - shift) {
    fprintf(stderr, "cdnrefresh-engine tenant: unexpected argument '%s'\n", argv[shift + optind]);
    return 2;
  }
  struct store *store = NULL;
  char err[512];
  struct store_options store_options = {.synchronous_full = true};
  char address[SETTING_STRING_MAX + 8];
  if (engine_config_store_address(options.store_url, options.data_dir, address, sizeof(address),
                                  err, sizeof(err))) {
    fprintf(stderr, "cdnrefresh-engine tenant: %s\n", err);
    return 2;
  }
  if (store_open(address, &store_options, &store, err, sizeof(err))) {
    fprintf(stderr, "cdnrefresh-engine tenant: %s\n", err);
    return 1;
  }
  struct arena arena;
  arena_init(&arena, 256 * 1024 * 1024);
  rc = tenant_admin_run(store, command, name, &options, &arena);
  arena_release(&arena);
  store_close(store);
  if (rc == 2)
    return 2;
  if (rc) {
    fprintf(stderr, "cdnrefresh-engine tenant %s: %s%s%s\n", command, cdr_error_message(rc),
            name ? ": " : "", name ? name : "");
    return 1;
  }
  return 0;
}
