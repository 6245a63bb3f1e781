# Makefile — builds moco-train, mocod and mococtl, and runs the tests.
#
#   make                  build build/bin/moco-train (installs missing Debian packages first)
#   make test             build and run every test (C unit tests, then PyTorch comparisons)
#   make demo             the demo through mocod: MoCo v2 pretraining of the demo recipe on the
#                         shipped images (CPU), then its kNN accuracy and a short linear evaluation
#   make demo-local       the same with moco-train alone (no daemon)
#   make bench            benchmarks against PyTorch and libjpeg-turbo (see docs/performance.md)
#   make SANITIZE=address | SANITIZE=undefined   instrumented build under build/san-<kind>/
#
# Sources are found by folder: every .c under common/ kernels/ data/ train/ goes into
# libmoco.a except *_main.c files, which are programs. tests/c/test_*.c are cmocka tests, one
# binary each; tests/python/test_*.py run under Debian's python3 with pytest.

CC      ?= gcc
PYTHON  := /usr/bin/python3
OPT     ?= -O3 -march=x86-64-v2 -mtune=native
CFLAGS  := $(OPT) -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration -fopenmp -I. \
           -I/usr/include/x86_64-linux-gnu $(EXTRA_CFLAGS)
LDLIBS  := -lturbojpeg -lpng -lyaml -lcjson -lopenblas -lpthread -lm
LDFLAGS := -fopenmp

ifeq ($(SANITIZE),)
BUILD := build
else
BUILD := build/san-$(SANITIZE)
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

LIB_SRCS  := $(filter-out %_main.c,$(wildcard common/*.c kernels/cpu/*.c kernels/reference/*.c \
               data/*.c train/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_SRCS := $(wildcard tests/c/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/c/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*_main.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%_main.c=$(BUILD)/tests/tools/%)
# mocod (daemon/ api/ db/) never links the compute: only the job-spec parser of train/ and
# common/error.c (DESIGN §1). mococtl (cli/) speaks HTTP and reuses the YAML reader.
SPEC_SRCS  := $(wildcard train/config*.c) common/error.c
MOCOD_SRCS := $(filter-out %_main.c,$(wildcard daemon/*.c api/*.c db/*.c)) $(SPEC_SRCS)
MOCOD_OBJS := $(MOCOD_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_SRCS   := $(filter-out %_main.c,$(wildcard cli/*.c)) $(SPEC_SRCS)
CLI_OBJS   := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
MOCOD_LIBS := -lmicrohttpd -lsqlite3 -lcrypto -lcjson -lyaml -lpthread -lm   # -lcrypto: sha256 of checkpoints
CLI_LIBS   := -lcurl -lcjson -lyaml -lm
PROGRAMS   := $(BUILD)/bin/moco-train $(if $(wildcard daemon/mocod_main.c),$(BUILD)/bin/mocod) \
              $(if $(wildcard cli/mococtl_main.c),$(BUILD)/bin/mococtl)
BENCH_SRCS := $(wildcard bench/*_main.c)
BENCH_BINS := $(BENCH_SRCS:bench/%_main.c=$(BUILD)/bin/%)

# ---- optional parts: probed and reported, never required by the CPU build ----------------
NVCC  := $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDNN := $(shell ls /usr/local/cuda/include/cudnn.h /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h 2>/dev/null | head -n1)
NCCL  := $(shell ls /usr/local/cuda/include/nccl.h /usr/include/nccl.h 2>/dev/null | head -n1)
MPICC := $(shell command -v mpicc 2>/dev/null)
CUDA_HOME ?= /usr/local/cuda

# MPI (DESIGN §6): only train/comm_mpi.c includes mpi.h; every program linking libmoco.a links
# libmpi. Without mpicc, comm_mpi.c says what to install when a launcher starts moco-train.
ifneq ($(MPICC),)
MPI_CFLAGS := -DMOCO_HAVE_MPI $(shell $(MPICC) --showme:compile)
LDLIBS     += $(shell $(MPICC) --showme:link)
$(BUILD)/obj/train/comm_mpi.o: CFLAGS += $(MPI_CFLAGS)
endif

# Objects are kept between builds (no "rm build/obj/..." after a build).
.SECONDARY:

.PHONY: all deps test-deps test test-c test-python demo demo-local bench probe clean install
.DEFAULT_GOAL := all

# The NCCL backend (train/comm_nccl.c) is compiled and linked into a check program when the CUDA
# toolkit has NCCL and MPI is present; it runs on a GPU machine (mpirun -np 2 ...).
NCCL_CHECK := $(if $(and $(NCCL),$(MPICC),$(NVCC)),$(BUILD)/bin/nccl-collectives-check)

all: deps probe $(PROGRAMS) $(BENCH_BINS) $(NCCL_CHECK)

deps:
	@scripts/install-deps.sh
test-deps:
	@scripts/install-deps.sh --test

probe:
	@echo "moco: optional parts: nvcc=$(if $(NVCC),$(NVCC),not found) cudnn=$(if $(CUDNN),$(CUDNN),not found) nccl=$(if $(NCCL),$(NCCL),not found) mpi=$(if $(MPICC),$(MPICC),not found)"
	@echo "moco: building the CPU backend (OpenBLAS + OpenMP)$(if $(SANITIZE), with -fsanitize=$(SANITIZE),)"

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libmoco.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/moco-train: $(BUILD)/obj/train/moco_train_main.o $(BUILD)/libmoco.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/bin/mocod: $(BUILD)/obj/daemon/mocod_main.o $(MOCOD_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(MOCOD_LIBS) -o $@

$(BUILD)/bin/mococtl: $(BUILD)/obj/cli/mococtl_main.o $(CLI_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(CLI_LIBS) -o $@

$(BUILD)/bin/%: $(BUILD)/obj/bench/%_main.o $(BUILD)/libmoco.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/tools/%: $(BUILD)/obj/tests/tools/%_main.o $(BUILD)/libmoco.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# tests/c/test_mocod_*.c test the daemon's parts (db/, daemon/, api/) without the compute.
$(BUILD)/tests/test_mocod_%: $(BUILD)/obj/tests/c/test_mocod_%.o $(MOCOD_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(MOCOD_LIBS) -lcmocka -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/c/%.o $(BUILD)/libmoco.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

NCCL_CFLAGS := -DMOCO_HAVE_NCCL -I$(CUDA_HOME)/include $(MPI_CFLAGS)
$(BUILD)/obj/nccl/%.o: train/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(NCCL_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/obj/nccl/nccl_collectives_check.o: tests/nccl/nccl_collectives_check.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(NCCL_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/bin/nccl-collectives-check: $(BUILD)/obj/nccl/nccl_collectives_check.o $(BUILD)/obj/nccl/comm_nccl.o $(BUILD)/libmoco.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lnccl -lcudart -o $@

# ---- tests ----------------------------------------------------------------------------------
test: test-deps all $(TEST_BINS) $(TOOL_BINS)
	@$(MAKE) --no-print-directory test-c
	@$(MAKE) --no-print-directory test-python

test-c: $(TEST_BINS)
	@fail=0; for t in $(TEST_BINS); do echo "== $$t"; $$t || fail=1; done; \
	 if [ $$fail -ne 0 ]; then echo "moco: C tests FAILED"; exit 1; fi

test-python: $(TOOL_BINS)
	MOCO_BUILD=$(BUILD) $(PYTHON) -m pytest -q tests/python $(PYTEST_ARGS)

# ---- demo and benchmarks -------------------------------------------------------------------
# make demo: the demo through the daemon (scripts/demo.sh) — starts mocod with its state in
# runs/demo/mocod, submits the demo pretraining, then a kNN and a short linear evaluation of its
# result, and watches them; mocod keeps serving the dashboard afterwards.
demo: all
	scripts/demo.sh

# make demo-local: the same three steps with moco-train alone, no daemon. A second run continues
# in runs/demo-local (after Ctrl-C, exactly where it stopped); `rm -rf runs/demo-local` starts over.
LOCAL := runs/demo-local
demo-local: all
	$(BUILD)/bin/moco-train pretrain --config configs/demo_moco_v2_cifar10_small.yaml \
	  --set checkpoint.dir=$(LOCAL)/checkpoints \
	  $$(ls $(LOCAL)/checkpoints/ckpt-*.safetensors >/dev/null 2>&1 && echo --resume $(LOCAL)/checkpoints) $(DEMO_ARGS)
	$(BUILD)/bin/moco-train knn --config configs/demo_moco_v2_cifar10_small.yaml --checkpoint $(LOCAL)/checkpoints
	$(BUILD)/bin/moco-train lincls --config configs/lincls_demo_cifar10_small.yaml \
	  --set model.pretrained=$(LOCAL)/checkpoints --set checkpoint.dir=$(LOCAL)/lincls \
	  $$(ls $(LOCAL)/lincls/lincls-last.safetensors >/dev/null 2>&1 && echo --resume $(LOCAL)/lincls)

bench: all
	bench/run_all.sh

# ---- install -------------------------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=staging]: the three programs, the dashboard, the
# OpenAPI document, the systemd unit, docs, and /etc/mocod/mocod.yaml (kept if it exists).
PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/mocod/web \
	  $(DESTDIR)$(PREFIX)/share/doc/mocod $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)/etc/mocod
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(wildcard web/*.html web/*.js web/*.css web/*.json) $(DESTDIR)$(PREFIX)/share/mocod/web/
	install -m 644 docs/mocod-api.md docs/job-spec.md docs/moco-train.md $(wildcard docs/mococtl.md) \
	  $(DESTDIR)$(PREFIX)/share/doc/mocod/
	sed 's|@PREFIX@|$(PREFIX)|g' packaging/mocod.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/mocod.service
	test -e $(DESTDIR)/etc/mocod/mocod.yaml || install -m 644 packaging/mocod.yaml $(DESTDIR)/etc/mocod/mocod.yaml

clean:
	rm -rf build

# Programs' *_main.o depend on headers too (a struct that grows must rebuild them).
-include $(LIB_OBJS:.o=.d) $(MOCOD_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_BINS:$(BUILD)/tests/%=$(BUILD)/obj/tests/c/%.d) \
         $(patsubst %.c,$(BUILD)/obj/%.d,$(wildcard train/*_main.c daemon/*_main.c cli/*_main.c bench/*_main.c tests/tools/*_main.c))
