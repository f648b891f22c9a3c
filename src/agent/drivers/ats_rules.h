/* ats_rules.h — the rules file of Traffic Server's regex_revalidate plugin, kept by the agent.
 *
 * Each prefix or regex purge becomes a rule "<regex> <expiry> [MISS]": ATS treats every cached
 * object whose remapped URL matches and which it stored before the rule was loaded as a miss
 * (delete) or as stale (invalidate), until the rule expires. Rules are merged by regex (a repeat
 * moves the expiry on, which makes the plugin take a new load time) and dropped once expired, so
 * the file stays as small as the set of purges of the last rule_ttl_s.
 *
 * Adding is group-committed: every rule added while a write is in progress goes into the next
 * write, so a burst of purges costs one file write and one reload. A rule counts as applied only
 * when the plugin's state file lists it (the plugin rewrites that file after each load).
 *
 * Thread-safe; blocking (file I/O, runs the reload command): call from worker threads only. */
#ifndef CDR_ATS_RULES_H
#define CDR_ATS_RULES_H

#include "agent/driver.h"

struct ats_rules;

/* Reads the rules already in options->rules_file (kept across agent restarts). NULL when out of
 * memory. */
struct ats_rules *ats_rules_create(const struct ats_options *options);

void ats_rules_destroy(struct ats_rules *rules);

/* Adds a rule for regex (miss: delete; else stale) and waits until ATS has loaded it. Sets
 * outcome: SUCCEEDED, or FAILED with reason ats_rule_too_long (its line would not fit the
 * plugin's line buffer, which would load the cut tail as a rule for every host),
 * ats_rules_not_writable, ats_reload_failed or ats_reload_unconfirmed. */
void ats_rules_add(struct ats_rules *rules, const char *regex, bool miss,
                   struct exec_outcome *outcome);

/* Rules currently kept (for tests). */
size_t ats_rules_count(struct ats_rules *rules);

#endif
