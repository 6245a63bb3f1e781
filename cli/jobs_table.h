/* jobs_table.h — the job table of `ls` and `queue`: ID NAME KIND STATE PROGRESS STEP LOSS
 * IMG/S ETA AGE, one row per job object. */
#ifndef MOCOCTL_JOBS_TABLE_H
#define MOCOCTL_JOBS_TABLE_H

#include "cli/format.h"

void jobs_table_init(Table *t);
void jobs_table_add(Table *t, const cJSON *job);
/* Whether a state is final (completed, failed, canceled). */
int job_state_finished(const char *state);

#endif
