/* tenant_admin.h — `cdnrefresh-engine tenant add|list|show|set|remove`: tenant management on the
 * store itself, so it works whether an engine is running or not; running engines pick a change up
 * within a second (they watch the store's tenant generation). */
#ifndef CDR_TENANT_ADMIN_H
#define CDR_TENANT_ADMIN_H

/* Runs the tenant command; argv[0] is "tenant". Returns the process exit code: 0 done, 1 the
 * store refused (e.g. no such tenant), 2 usage error. */
int tenant_admin_main(int argc, char **argv);

#endif
