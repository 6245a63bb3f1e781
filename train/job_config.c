/* job_config.c — see job_config.h. */
#include "train/job_config.h"

#include "common/error.h"

static const char *kind_name(JobKind k)
{
    return k == JOB_PRETRAIN ? "pretrain" : k == JOB_LINCLS ? "lincls" : "knn";
}

void job_config_load(const CliArgs *args, const StFile *resumed, JobKind kind,
                     const char *command, JobConfig *cfg)
{
    char err[2048];
    int rc;
    if (!args->config && resumed) {
        /* Resuming without a config continues with the checkpoint's own resolved spec, and
         * --set changes it as it would a config file (e.g. more epochs, a lower lr). */
        const char *json = st_metadata(resumed, "config");
        if (!json) die("--resume: the checkpoint holds no config; pass --config");
        rc = config_load_json_ex(json, args->sets, args->n_sets, cfg, err, sizeof err);
    } else {
        if (!args->config) die("%s needs --config FILE (see configs/ for recipes)", command);
        rc = config_load(args->config, args->sets, args->n_sets, cfg, err, sizeof err);
    }
    if (rc != 0) die("%s", err);
    if (cfg->kind != kind)
        die("the config's kind is '%s', not '%s'; set kind: %s (or use moco-train %s)",
            kind_name(cfg->kind), kind_name(kind), kind_name(kind), kind_name(cfg->kind));
}
