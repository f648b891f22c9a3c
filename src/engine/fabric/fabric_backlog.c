/* fabric_backlog.c — the backlogs the API admits tasks against, in all and per tenant, published
 * on the fabric's tick for the API's threads: in memory (limits.max_unfinished_results), the
 * (URL, node) results the fabric's tasks in memory still wait for plus the estimates of the
 * tasks accepted and not planned yet; in the store (limits.max_parked_targets), the targets of
 * the tasks parked there that only offline nodes owe, and the earliest of their deadlines. Per
 * tenant, so that one tenant's work cannot take a whole bound from the others (api.c gives each its
 * share). */
#include "common/array.h"
#include "engine/fabric/fabric_internal.h"

#include <stdlib.h>

enum { FABRIC_DRAINED_WINDOW_MS = 10000 }; /* tenant_limits.drained counts results over this */

int64_t fabric_backlog(const struct fabric *fabric) {
  return atomic_load_explicit(&fabric->published_backlog, memory_order_relaxed) +
         atomic_load_explicit(&fabric->charged_backlog, memory_order_relaxed);
}

int64_t fabric_tenant_backlog(const struct tenant_limits *tenant) {
  return atomic_load_explicit(&tenant->backlog, memory_order_relaxed) +
         atomic_load_explicit(&tenant->charged, memory_order_relaxed);
}

int64_t fabric_tenants_waiting(const struct fabric *fabric) {
  return atomic_load_explicit(&fabric->tenants_waiting, memory_order_relaxed);
}

int64_t fabric_parked(const struct fabric *fabric) {
  return atomic_load_explicit(&fabric->published_parked, memory_order_relaxed);
}

int64_t fabric_tenants_parking(const struct fabric *fabric) {
  return atomic_load_explicit(&fabric->tenants_parking, memory_order_relaxed);
}

int64_t fabric_backlog_charge(struct fabric *fabric, struct tenant_limits *tenant, size_t targets) {
  int64_t charge =
      (int64_t)targets * atomic_load_explicit(&fabric->nodes_registered, memory_order_relaxed);
  atomic_fetch_add_explicit(&fabric->charged_backlog, charge, memory_order_relaxed);
  if (tenant)
    atomic_fetch_add_explicit(&tenant->charged, charge, memory_order_relaxed);
  return charge;
}

void fabric_backlog_refund(struct fabric *fabric, struct tenant_limits *tenant, int64_t charge) {
  atomic_fetch_sub_explicit(&fabric->charged_backlog, charge, memory_order_relaxed);
  if (tenant)
    atomic_fetch_sub_explicit(&tenant->charged, charge, memory_order_relaxed);
}

void fabric_backlog_count(struct fabric *fabric, struct fabric_task *task) {
  int64_t pending = task->task->counters.pending;
  task->counted = true;
  fabric->pending_items += pending;
  /* At once, not only at the next tick: a burst of adoptions is what the API must see. */
  atomic_store_explicit(&fabric->published_backlog, fabric->pending_items, memory_order_relaxed);
  struct tenant_limits *tenant = task->tenant;
  if (tenant && !tenant->fabric_listed) {
    if (!array_reserve((void **)&fabric->tenants, &fabric->tenant_cap, fabric->tenant_count,
                       sizeof(*fabric->tenants), 16))
      tenant = task->tenant = NULL; /* out of memory: counted in all only */
    else
      fabric->tenants[fabric->tenant_count++] = tenant;
  }
  if (!tenant)
    return;
  tenant->fabric_listed = true;
  tenant->fabric_pending += pending;
  atomic_store_explicit(&tenant->backlog, tenant->fabric_pending, memory_order_relaxed);
}

void fabric_backlog_uncount(struct fabric *fabric, struct fabric_task *task) {
  if (!task->counted)
    return;
  int64_t pending = task->task->counters.pending; /* a canceled task's dropped items */
  fabric->pending_items -= pending;
  if (task->tenant)
    task->tenant->fabric_pending -= pending;
}

void fabric_backlog_park(struct fabric *fabric, const struct fabric_parked *parked) {
  int64_t owed = (int64_t)parked->target_count * parked->unreached;
  fabric->pending_items -= owed;
  fabric->parked_count++;
  fabric->parked_targets += parked->target_count;
  struct tenant_limits *tenant = parked->tenant;
  if (!tenant)
    return;
  tenant->fabric_pending -= owed;
  tenant->fabric_parked += parked->target_count;
  fabric_backlog_parked_deadline(parked);
}

void fabric_backlog_unpark(struct fabric *fabric, const struct fabric_parked *parked) {
  fabric->parked_count--;
  fabric->parked_targets -= parked->target_count;
  if (parked->tenant)
    parked->tenant->fabric_parked -= parked->target_count;
}

void fabric_backlog_deadlines_begin(struct fabric *fabric) {
  for (size_t i = 0; i < fabric->tenant_count; i++)
    fabric->tenants[i]->fabric_parked_next_ms = INT64_MAX;
}

void fabric_backlog_deadlines_end(struct fabric *fabric) {
  for (size_t i = 0; i < fabric->tenant_count; i++) {
    struct tenant_limits *tenant = fabric->tenants[i];
    atomic_store_explicit(&tenant->parked_next_ms, tenant->fabric_parked_next_ms,
                          memory_order_relaxed);
  }
}

void fabric_backlog_publish(struct fabric *fabric, uint64_t now_ms) {
  atomic_store_explicit(&fabric->published_backlog, fabric->pending_items, memory_order_relaxed);
  atomic_store_explicit(&fabric->published_parked, fabric->parked_targets, memory_order_relaxed);
  bool window_ended = now_ms >= fabric->drained_until_ms;
  if (window_ended)
    fabric->drained_until_ms = now_ms + FABRIC_DRAINED_WINDOW_MS;
  int64_t waiting = 0, parking = 0;
  for (size_t i = 0; i < fabric->tenant_count; i++) {
    struct tenant_limits *tenant = fabric->tenants[i];
    atomic_store_explicit(&tenant->backlog, tenant->fabric_pending, memory_order_relaxed);
    atomic_store_explicit(&tenant->parked, tenant->fabric_parked, memory_order_relaxed);
    waiting += tenant->fabric_pending > 0;
    parking += tenant->fabric_parked > 0;
    if (window_ended) {
      atomic_store_explicit(&tenant->drained, tenant->fabric_drained, memory_order_relaxed);
      tenant->fabric_drained = 0;
    }
  }
  atomic_store_explicit(&fabric->tenants_waiting, waiting, memory_order_relaxed);
  atomic_store_explicit(&fabric->tenants_parking, parking, memory_order_relaxed);
}

void fabric_backlog_close(struct fabric *fabric) {
  for (size_t i = 0; i < fabric->tenant_count; i++) {
    struct tenant_limits *tenant = fabric->tenants[i];
    tenant->fabric_listed = false; /* the next fabric of this process lists it again */
    atomic_store_explicit(&tenant->backlog, tenant->fabric_pending, memory_order_relaxed);
    atomic_store_explicit(&tenant->parked, tenant->fabric_parked, memory_order_relaxed);
  }
  free(fabric->tenants);
  fabric->tenants = NULL;
  fabric->tenant_count = fabric->tenant_cap = 0;
}
