/* agent_config.h — every setting of cdnrefresh-agent, with its flag, INI name and default. */
#ifndef CDR_AGENT_CONFIG_H
#define CDR_AGENT_CONFIG_H

#include "common/settings.h"

#include <stdint.h>
#include <sys/socket.h>

enum { AGENT_ENGINES_MAX = 16 };

struct agent_config {
  char engines[SETTING_STRING_MAX]; /* HOST:PORT[,HOST:PORT...] */
  char node_id[SETTING_STRING_MAX];
  char groups[SETTING_STRING_MAX]; /* g1,g2 */
  char token[SETTING_STRING_MAX];
  char cache[SETTING_STRING_MAX];     /* nginx | varnish | ats | squid */
  char cache_url[SETTING_STRING_MAX]; /* http://127.0.0.1:PORT */
  char https_url[SETTING_STRING_MAX]; /* https://127.0.0.1:PORT of the edge, or "" */
  char nginx_cache_dir[SETTING_STRING_MAX];
  char nginx_purge_url[SETTING_STRING_MAX]; /* http://127.0.0.1:PORT of the purge server, or "" */
  char tag_header[SETTING_STRING_MAX];      /* response header holding tags (nginx index) */
  char ats_rules_file[SETTING_STRING_MAX];
  char ats_state_file[SETTING_STRING_MAX];
  char ats_reload_command[SETTING_STRING_MAX];
  int64_t ats_rule_ttl_s;
  int64_t ats_reload_timeout_ms;
  int64_t concurrency; /* cache requests at once */
  int64_t window;      /* work items in flight from the engine */
  int64_t request_timeout_ms;
  char log_level[SETTING_STRING_MAX];
  char metrics_listen[SETTING_STRING_MAX]; /* empty: no /metrics endpoint */
  char tls_ca[SETTING_STRING_MAX];         /* engine link TLS, verified against this CA */
  char tls_cert[SETTING_STRING_MAX];       /* client certificate, when the engine asks */
  char tls_key[SETTING_STRING_MAX];
  char tls_server_name[SETTING_STRING_MAX]; /* name the engine's certificate must carry */
  struct sockaddr_storage metrics_address;
};

/* Loads defaults, the --config file and flags; checks required settings. Returns 0 or CDR_ECONFIG
 * with the reason in err. */
int agent_config_load(struct agent_config *config, int argc, char **argv, struct settings_cli *cli,
                      char *err, size_t err_size);

void agent_config_print_help(FILE *out);

#endif
