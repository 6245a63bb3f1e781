/* bench.h — `moco-train bench`: timed MoCo steps on synthetic inputs. */
#ifndef MOCO_BENCH_H
#define MOCO_BENCH_H

#include "train/cli_args.h"

int bench_main(const CliArgs *args);

#endif
