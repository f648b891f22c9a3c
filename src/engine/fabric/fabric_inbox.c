/* fabric_inbox.c — the fabric's entry points for other threads: a committed task
 * (fabric_accept), a cancel (fabric_cancel) and questions (fabric_ask), each a mail to its inbox;
 * answers go back through the asker's mailbox. */
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"

#include <stdlib.h>
#include <string.h>

static void fabric_on_accepted(struct mail *mail) {
  struct store_job *job = CONTAINER_OF(mail, struct store_job, mail);
  fabric_task_adopt(job->context, job);
}

void fabric_accept(struct fabric *fabric, struct store_job *job) {
  job->context = fabric;
  job->mail.arrived = fabric_on_accepted;
  mailbox_post(&fabric->inbox, &job->mail);
}

/* A cancel on its way to the fabric: the task as the store has it (id, and where its plan put
 * it), without its targets. */
struct fabric_cancel_mail {
  struct mail mail;
  struct fabric *fabric;
  struct task task;
};

static void fabric_on_cancel(struct mail *mail) {
  struct fabric_cancel_mail *cancel = CONTAINER_OF(mail, struct fabric_cancel_mail, mail);
  fabric_task_cancel(cancel->fabric, &cancel->task);
  free(cancel);
}

void fabric_cancel(struct fabric *fabric, const struct task *task) {
  struct fabric_cancel_mail *cancel = calloc(1, sizeof(*cancel));
  if (!cancel) {
    log_error("task.cancel", "out of memory: task %s's queued work is dropped at its end instead",
              task->id);
    return;
  }
  cancel->fabric = fabric;
  memcpy(cancel->task.id, task->id, sizeof(cancel->task.id));
  cancel->task.type = task->type;
  cancel->task.planned = task->planned;
  cancel->task.plan_seq = task->plan_seq;
  cancel->mail.arrived = fabric_on_cancel;
  mailbox_post(&fabric->inbox, &cancel->mail);
}

static void fabric_on_answer(struct mail *mail) {
  struct fabric_query *query = CONTAINER_OF(mail, struct fabric_query, mail);
  query->answered(query);
}

/* Answers a question asked from another loop (fabric_ask), then sends the answer back. */
static void fabric_on_question(struct mail *mail) {
  struct fabric_query *query = CONTAINER_OF(mail, struct fabric_query, mail);
  struct fabric *fabric = query->fabric;
  switch (query->question) {
  case FABRIC_NODES:
    query->answer = fabric_nodes_json(fabric, &query->nodes_page);
    query->result = query->answer ? 0 : CDR_ENOMEM;
    break;
  case FABRIC_STATS:
    query->answer = fabric_stats_json(fabric);
    query->result = query->answer ? 0 : CDR_ENOMEM;
    break;
  case FABRIC_TASK_WAITING:
    query->task_waiting.found =
        fabric_task_waiting(fabric, query->task_waiting.job->task, &query->task_waiting.answer);
    break;
  case FABRIC_NODE_REMOVE: {
    struct fabric_node *node = fabric_node_find(fabric, query->node_id);
    query->result = node && !node->removed ? 0 : CDR_ENODE_NOT_FOUND;
    if (!query->result)
      fabric_node_remove(fabric, node);
    break;
  }
  }
  query->mail.arrived = fabric_on_answer;
  mailbox_post(query->reply_to, &query->mail);
}

void fabric_ask(struct fabric *fabric, struct fabric_query *query) {
  query->fabric = fabric;
  query->mail.arrived = fabric_on_question;
  mailbox_post(&fabric->inbox, &query->mail);
}
