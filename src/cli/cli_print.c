/* cli_print.c — the client's human-readable output: task details, tables and progress. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const char *cli_text(const json_t *object, const char *key) {
  const char *text = json_string_value(json_object_get(object, key));
  return text ? text : "-";
}

static long long cli_number(const json_t *object, const char *key) {
  return (long long)json_integer_value(json_object_get(object, key));
}

void cli_print_task(const json_t *task) {
  const json_t *targets = json_object_get(task, "targets");
  const json_t *counters = json_object_get(task, "counters");
  printf("task:        %s\n", cli_text(task, "task_id"));
  if (json_is_string(json_object_get(task, "mode")))
    printf("type:        %s (%s)\n", cli_text(task, "type"), cli_text(task, "mode"));
  else
    printf("type:        %s\n", cli_text(task, "type"));
  printf("status:      %s\n", cli_text(task, "status"));
  printf("targets:     %lld urls, %lld prefixes, %lld regexes, %lld tags\n",
         cli_number(targets, "urls"), cli_number(targets, "prefixes"),
         cli_number(targets, "regexes"), cli_number(targets, "tags"));
  printf("results:     %lld total, %lld succeeded (%lld verified), %lld failed, %lld pending, "
         "%lld unsupported\n",
         cli_number(counters, "total"), cli_number(counters, "succeeded"),
         cli_number(counters, "verified"), cli_number(counters, "failed"),
         cli_number(counters, "pending"), cli_number(counters, "unsupported"));
  const json_t *waiting = json_object_get(task, "waiting_for");
  if (waiting && cli_number(waiting, "offline") > 0)
    printf("waiting for: %lld nodes, %lld of them offline (last seen %s)\n",
           cli_number(waiting, "nodes"), cli_number(waiting, "offline"),
           cli_text(waiting, "offline_since"));
  else if (waiting)
    printf("waiting for: %lld nodes, all online\n", cli_number(waiting, "nodes"));
  printf("created:     %s\n", cli_text(task, "created_at"));
  printf("started:     %s\n", cli_text(task, "started_at"));
  printf("finished:    %s\n", cli_text(task, "finished_at"));
  printf("deadline:    %llds\n", cli_number(task, "deadline_s"));
  if (json_is_string(json_object_get(task, "callback")))
    printf("callback:    %s\n", cli_text(task, "callback"));
}

void cli_print_task_table(const json_t *tasks) {
  printf("%-26s  %-7s  %-10s  %-8s  %7s  %24s\n", "TASK", "TYPE", "MODE", "STATUS", "TARGETS",
         "CREATED");
  size_t index;
  const json_t *task;
  json_array_foreach(tasks, index, task) {
    const json_t *targets = json_object_get(task, "targets");
    long long count = cli_number(targets, "urls") + cli_number(targets, "prefixes") +
                      cli_number(targets, "regexes") + cli_number(targets, "tags");
    printf("%-26s  %-7s  %-10s  %-8s  %7lld  %24s\n", cli_text(task, "task_id"),
           cli_text(task, "type"), cli_text(task, "mode"), cli_text(task, "status"), count,
           cli_text(task, "created_at"));
  }
  if (json_array_size(tasks) == 0)
    printf("(no tasks)\n");
}

void cli_print_item_table(const json_t *items) {
  printf("%6s  %-6s  %-11s  %-40s  %s\n", "INDEX", "KIND", "STATE", "TARGET", "NODES");
  size_t index;
  const json_t *item;
  json_array_foreach(items, index, item) {
    printf("%6lld  %-6s  %-11s  %-40s ", cli_number(item, "index"), cli_text(item, "kind"),
           cli_text(item, "state"), cli_text(item, "target"));
    size_t n;
    const json_t *node;
    json_array_foreach(json_object_get(item, "nodes"), n, node) {
      const char *reason = json_string_value(json_object_get(node, "reason"));
      bool verified = json_is_true(json_object_get(node, "verified"));
      printf(" %s=%s%s%s%s%s", cli_text(node, "node"), cli_text(node, "state"),
             verified ? "(verified)" : "", reason ? "(" : "", reason ? reason : "",
             reason ? ")" : "");
    }
    putchar('\n');
  }
}

void cli_print_node_table(const json_t *nodes) {
  if (json_array_size(nodes) == 0) {
    printf("(no nodes have registered: start cdnrefresh-agent on each edge)\n");
    return;
  }
  printf("%-24s  %-8s  %-8s  %-16s  %7s  %8s  %8s  %11s  %s\n", "NODE", "CACHE", "STATE", "GROUPS",
         "QUEUED", "DONE", "FAILED", "UNSUPPORTED", "HEARTBEAT");
  size_t index;
  const json_t *node;
  json_array_foreach(nodes, index, node) {
    char groups[256] = "";
    size_t g;
    const json_t *group;
    json_array_foreach(json_object_get(node, "groups"), g, group) {
      size_t used = strlen(groups);
      snprintf(groups + used, sizeof(groups) - used, "%s%s", g ? "," : "",
               json_string_value(group) ? json_string_value(group) : "");
    }
    char heartbeat[32] = "-";
    if (json_is_integer(json_object_get(node, "last_heartbeat_age_ms")))
      snprintf(heartbeat, sizeof(heartbeat), "%.1fs ago",
               cli_number(node, "last_heartbeat_age_ms") / 1000.0);
    printf("%-24s  %-8s  %-8s  %-16s  %7lld  %8lld  %8lld  %11lld  %s%s\n",
           cli_text(node, "node_id"), cli_text(node, "cache"), cli_text(node, "state"),
           groups[0] ? groups : "-", cli_number(node, "queue_depth"),
           cli_number(node, "items_done"), cli_number(node, "items_failed"),
           cli_number(node, "items_unsupported"), heartbeat,
           json_object_get(node, "warning") ? "  (never finished an item)" : "");
  }
}

void cli_print_quota(const json_t *body) {
  printf("tenant %s, quotas reset at %s\n", cli_text(body, "tenant"), cli_text(body, "resets_at"));
  printf("%-16s  %12s  %12s  %12s\n", "QUOTA", "USED", "LIMIT", "REMAINING");
  const char *name;
  const json_t *quota;
  json_object_foreach((json_t *)json_object_get(body, "quotas"), name, quota) {
    char limit[24] = "unlimited", remaining[24] = "-";
    if (json_is_integer(json_object_get(quota, "limit"))) {
      snprintf(limit, sizeof(limit), "%lld", cli_number(quota, "limit"));
      snprintf(remaining, sizeof(remaining), "%lld", cli_number(quota, "remaining"));
    }
    printf("%-16s  %12lld  %12s  %12s\n", name, cli_number(quota, "used"), limit, remaining);
  }
  const json_t *rates = json_object_get(body, "rate_limits");
  const char *keys[] = {"requests_per_s", "urls_per_s"};
  for (size_t i = 0; i < 2; i++) {
    if (json_is_integer(json_object_get(rates, keys[i])))
      printf("rate limit %s: %lld\n", keys[i], cli_number(rates, keys[i]));
    else
      printf("rate limit %s: unlimited\n", keys[i]);
  }
}

void cli_print_error(long status, const json_t *body) {
  const json_t *error = json_object_get(body, "error");
  if (!error) {
    fprintf(stderr, "cdnrefresh: the engine answered HTTP %ld\n", status);
    return;
  }
  const char *field = json_string_value(json_object_get(error, "field"));
  fprintf(stderr, "cdnrefresh: %s (HTTP %ld, %s%s%s)\n", cli_text(error, "message"), status,
          cli_text(error, "code"), field ? ", field " : "", field ? field : "");
}

void cli_print_progress(const json_t *task, bool terminal, bool final) {
  static char last[384];
  const json_t *counters = json_object_get(task, "counters");
  long long total = cli_number(counters, "total");
  long long finished = cli_number(counters, "succeeded") + cli_number(counters, "failed") +
                       cli_number(counters, "unsupported");
  /* A task done everywhere else says it waits for offline nodes, and since when. */
  const json_t *waiting = json_object_get(task, "waiting_for");
  long long offline = cli_number(waiting, "offline");
  char waits[128] = "";
  if (offline > 0)
    snprintf(waits, sizeof(waits), "; waiting for %lld offline node%s, last seen %s", offline,
             offline == 1 ? "" : "s", cli_text(waiting, "offline_since"));
  char line[384];
  snprintf(line, sizeof(line),
           "%s %s: %lld/%lld results (succeeded %lld, verified %lld, failed %lld, "
           "unsupported %lld)%s",
           cli_text(task, "task_id"), cli_text(task, "status"), finished, total,
           cli_number(counters, "succeeded"), cli_number(counters, "verified"),
           cli_number(counters, "failed"), cli_number(counters, "unsupported"), waits);
  if (terminal) {
    enum { BAR = 30 };
    int filled = total > 0 ? (int)(finished * BAR / total) : 0;
    char bar[BAR + 1];
    for (int i = 0; i < BAR; i++)
      bar[i] = i < filled ? '#' : '-';
    bar[BAR] = '\0';
    fprintf(stderr, "\r[%s] %3lld%% %s\033[K", bar, total > 0 ? finished * 100 / total : 0, line);
    if (final)
      fputc('\n', stderr);
  } else if (strcmp(line, last) != 0) {
    fprintf(stderr, "%s\n", line);
    snprintf(last, sizeof(last), "%s", line);
  }
  fflush(stderr);
}
