/* ats_rules.c — keeps regex_revalidate's rules file and reloads Traffic Server (ats_rules.h). */
#include "agent/drivers/ats_rules.h"

#include "common/array.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* regex_revalidate (ATS 9.2) reads its file with fgets into 2,048 bytes: a longer line is cut,
 * and its tail loaded as a rule of its own, with no host in it. A rule line, its newline
 * included, must fit. */
enum { RULES_POLL_MS = 10, RULES_LINE_MAX = 2048 - 1 };

struct ats_rule {
  char *regex;
  long long expiry;    /* seconds since the epoch */
  bool miss;           /* MISS (delete) rather than STALE (invalidate) */
  uint64_t generation; /* when it was last added */
};

struct ats_rules {
  pthread_mutex_t lock;
  pthread_cond_t applied; /* a write finished */
  char *rules_file, *state_file, *reload_command;
  long rule_ttl_s, reload_timeout_ms;
  struct ats_rule *rules;
  size_t count, cap;
  uint64_t wanted;          /* generation of the newest added rule */
  uint64_t applied_through; /* every rule up to this generation is loaded by ATS */
  uint64_t failed_through;  /* a write covering up to this generation failed */
  const char *failed_reason;
  bool writing;
  long long last_mtime; /* the plugin reloads only when the file's mtime (seconds) grows */
};

/* Splits "REGEX N1 .. Nn [TYPE]" from its end: fills numbers (count of them) and *type (NULL
 * when absent), trims line to the regex. False when the line holds no rule. */
static bool rules_parse_line(char *line, long long *numbers, int count, const char **type) {
  size_t len = strlen(line);
  while (len && isspace((unsigned char)line[len - 1]))
    line[--len] = '\0';
  if (!len || line[0] == '#')
    return false;
  *type = NULL;
  for (int field = count; field >= 0; field--) {
    char *space = strrchr(line, ' ');
    if (!space)
      return false;
    char *token = space + 1;
    if (field == count && isalpha((unsigned char)*token)) {
      *type = token;
    } else if (field == count) {
      continue; /* no type: the last token is the last number */
    } else {
      char *end;
      numbers[field] = strtoll(token, &end, 10);
      if (*end)
        return false;
    }
    while (space > line && space[-1] == ' ')
      space--;
    *space = '\0';
  }
  return line[0] != '\0';
}

static struct ats_rule *rules_find(struct ats_rules *rules, const char *regex) {
  for (size_t i = 0; i < rules->count; i++)
    if (strcmp(rules->rules[i].regex, regex) == 0)
      return &rules->rules[i];
  return NULL;
}

static bool rules_append(struct ats_rules *rules, const char *regex, long long expiry, bool miss,
                         uint64_t generation) {
  if (!array_reserve((void **)&rules->rules, &rules->cap, rules->count, sizeof(*rules->rules), 16))
    return false;
  char *copy = strdup(regex);
  if (!copy)
    return false;
  rules->rules[rules->count++] = (struct ats_rule){copy, expiry, miss, generation};
  return true;
}

static void rules_remove_at(struct ats_rules *rules, size_t i) {
  free(rules->rules[i].regex);
  rules->rules[i] = rules->rules[--rules->count];
}

/* Drops expired rules and renders the rest as the file's text (malloc'd; NULL when out of
 * memory). Lock held. */
static char *rules_render(struct ats_rules *rules) {
  long long now = (long long)time(NULL);
  size_t size = 128;
  for (size_t i = rules->count; i-- > 0;) {
    if (rules->rules[i].expiry <= now)
      rules_remove_at(rules, i);
    else
      size += strlen(rules->rules[i].regex) + 32;
  }
  char *text = malloc(size);
  if (!text)
    return NULL;
  size_t used = (size_t)snprintf(text, size, "# kept by cdnrefresh-agent: edits are overwritten\n");
  for (size_t i = 0; i < rules->count; i++)
    used += (size_t)snprintf(text + used, size - used, "%s %lld%s\n", rules->rules[i].regex,
                             rules->rules[i].expiry, rules->rules[i].miss ? " MISS" : "");
  return text;
}

/* Writes text to the rules file (through a temporary file and rename) with an mtime newer than
 * the last one, waiting for the next second when needed. */
static bool rules_write(struct ats_rules *rules, const char *text) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (now.tv_sec <= rules->last_mtime) {
    struct timespec wait = {(time_t)(rules->last_mtime + 1), 0};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &wait, NULL) == EINTR)
      ;
    now = wait;
  }
  size_t path_len = strlen(rules->rules_file) + 8;
  char *temporary = malloc(path_len);
  if (!temporary)
    return false;
  snprintf(temporary, path_len, "%s.tmp", rules->rules_file);
  FILE *file = fopen(temporary, "w");
  bool ok = file && fputs(text, file) >= 0;
  ok = file && fclose(file) == 0 && ok;
  struct timespec times[2] = {now, now};
  ok = ok && utimensat(AT_FDCWD, temporary, times, 0) == 0 &&
       rename(temporary, rules->rules_file) == 0;
  if (ok)
    rules->last_mtime = (long long)now.tv_sec;
  else
    unlink(temporary);
  free(temporary);
  return ok;
}

static bool rules_run_reload(char *command) {
  pid_t pid;
  char shell[] = "sh", flag[] = "-c";
  char *argv[] = {shell, flag, command, NULL};
  if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0)
    return false;
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Reads the plugin's state file ("REGEX EPOCH EXPIRY TYPE" lines) as "\nREGEX EXPIRY\n..." so a
 * rule is found with one strstr. NULL when it cannot be read. */
static char *rules_state_read(const char *state_file) {
  FILE *state = fopen(state_file, "r");
  if (!state)
    return NULL;
  char *loaded = NULL;
  size_t loaded_size = 0;
  FILE *memory = open_memstream(&loaded, &loaded_size);
  char line[8192];
  if (memory)
    fputc('\n', memory);
  while (memory && fgets(line, sizeof(line), state)) {
    long long numbers[2] = {0, 0};
    const char *type;
    if (rules_parse_line(line, numbers, 2, &type))
      fprintf(memory, "%s %lld\n", line, numbers[1]);
  }
  fclose(state);
  if (memory)
    fclose(memory);
  return loaded;
}

/* True when state lists every rule written in generations up to batch. With drop, the rules it
 * does not list are forgotten: ATS refused them (a regex its PCRE cannot compile), and keeping
 * them would fail every later write too. Lock held. */
static bool rules_all_listed(struct ats_rules *rules, const char *state, uint64_t batch,
                             bool drop) {
  bool all = true;
  for (size_t i = rules->count; i-- > 0;) {
    const struct ats_rule *rule = &rules->rules[i];
    if (rule->generation > batch)
      continue;
    size_t need = strlen(rule->regex) + 32;
    char *wanted = malloc(need);
    bool listed = wanted && state &&
                  (snprintf(wanted, need, "\n%s %lld\n", rule->regex, rule->expiry),
                   strstr(state, wanted) != NULL);
    free(wanted);
    if (!listed) {
      all = false;
      if (drop)
        rules_remove_at(rules, i);
    }
  }
  return all;
}

/* Writes, reloads and waits for the state file to list the rules of generations up to batch.
 * Returns NULL or the failure's reason. Called without the lock. */
static const char *rules_apply(struct ats_rules *rules, const char *text, uint64_t batch) {
  if (!rules_write(rules, text))
    return "ats_rules_not_writable";
  if (!rules_run_reload(rules->reload_command))
    return "ats_reload_failed";
  if (!rules->state_file[0])
    return NULL;
  for (long waited = 0;; waited += RULES_POLL_MS) {
    char *state = rules_state_read(rules->state_file);
    bool last = waited >= rules->reload_timeout_ms;
    pthread_mutex_lock(&rules->lock);
    bool all = rules_all_listed(rules, state, batch, last);
    pthread_mutex_unlock(&rules->lock);
    free(state);
    if (all)
      return NULL;
    if (last)
      return "ats_reload_unconfirmed";
    struct timespec pause = {0, RULES_POLL_MS * 1000000L};
    nanosleep(&pause, NULL);
  }
}

void ats_rules_add(struct ats_rules *rules, const char *regex, bool miss,
                   struct exec_outcome *outcome) {
  /* The longest the rule's line can be: the regex, " EXPIRY" (20 digits at most) and " MISS". */
  if (strlen(regex) + 1 + 20 + 5 + 1 > RULES_LINE_MAX) {
    driver_outcome_failed(outcome, 0, CURLE_OK);
    snprintf(outcome->reason, sizeof(outcome->reason), "ats_rule_too_long");
    return;
  }
  pthread_mutex_lock(&rules->lock);
  long long expiry = (long long)time(NULL) + rules->rule_ttl_s;
  uint64_t generation = ++rules->wanted;
  struct ats_rule *rule = rules_find(rules, regex);
  if (rule) {
    /* A new expiry makes the plugin take a new load time, so objects cached since the first
     * purge are caught too; MISS stays MISS (a delete is never weakened to a revalidation). */
    rule->expiry = expiry > rule->expiry ? expiry : rule->expiry + 1;
    rule->miss = rule->miss || miss;
    rule->generation = generation;
  } else if (!rules_append(rules, regex, expiry, miss, generation)) {
    pthread_mutex_unlock(&rules->lock);
    driver_outcome_failed(outcome, 0, CURLE_OUT_OF_MEMORY);
    return;
  }
  while (rules->applied_through < generation && rules->failed_through < generation) {
    if (rules->writing) {
      pthread_cond_wait(&rules->applied, &rules->lock);
      continue;
    }
    rules->writing = true;
    uint64_t batch = rules->wanted;
    char *text = rules_render(rules);
    pthread_mutex_unlock(&rules->lock);
    const char *reason = text ? rules_apply(rules, text, batch) : "out_of_memory";
    free(text);
    pthread_mutex_lock(&rules->lock);
    rules->writing = false;
    if (reason) {
      rules->failed_through = batch;
      rules->failed_reason = reason;
    } else {
      rules->applied_through = batch;
    }
    pthread_cond_broadcast(&rules->applied);
  }
  if (rules->applied_through >= generation) {
    outcome->outcome = CDR__OUTCOME__SUCCEEDED;
    outcome->http_status = 0;
  } else {
    driver_outcome_failed(outcome, 0, CURLE_OK);
    snprintf(outcome->reason, sizeof(outcome->reason), "%s", rules->failed_reason);
  }
  pthread_mutex_unlock(&rules->lock);
}

size_t ats_rules_count(struct ats_rules *rules) {
  pthread_mutex_lock(&rules->lock);
  size_t count = rules->count;
  pthread_mutex_unlock(&rules->lock);
  return count;
}

/* Takes the rules a previous run left in the file, and its mtime. */
static bool rules_load(struct ats_rules *rules) {
  FILE *file = fopen(rules->rules_file, "r");
  if (!file)
    return true; /* none yet */
  struct stat info;
  if (fstat(fileno(file), &info) == 0)
    rules->last_mtime = (long long)info.st_mtime;
  char line[8192];
  bool ok = true;
  while (ok && fgets(line, sizeof(line), file)) {
    long long expiry = 0;
    const char *type;
    if (rules_parse_line(line, &expiry, 1, &type) && !rules_find(rules, line))
      ok = rules_append(rules, line, expiry, type && strcmp(type, "MISS") == 0, 0);
  }
  fclose(file);
  return ok;
}

struct ats_rules *ats_rules_create(const struct ats_options *options) {
  struct ats_rules *rules = calloc(1, sizeof(*rules));
  if (!rules)
    return NULL;
  pthread_mutex_init(&rules->lock, NULL);
  pthread_cond_init(&rules->applied, NULL);
  rules->rules_file = strdup(options->rules_file);
  rules->state_file = strdup(options->state_file);
  rules->reload_command = strdup(options->reload_command);
  rules->rule_ttl_s = options->rule_ttl_s;
  rules->reload_timeout_ms = options->reload_timeout_ms;
  if (!rules->rules_file || !rules->state_file || !rules->reload_command || !rules_load(rules)) {
    ats_rules_destroy(rules);
    return NULL;
  }
  return rules;
}

void ats_rules_destroy(struct ats_rules *rules) {
  if (!rules)
    return;
  for (size_t i = 0; i < rules->count; i++)
    free(rules->rules[i].regex);
  free(rules->rules);
  free(rules->rules_file);
  free(rules->state_file);
  free(rules->reload_command);
  pthread_mutex_destroy(&rules->lock);
  pthread_cond_destroy(&rules->applied);
  free(rules);
}
