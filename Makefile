# embtune - one plain Makefile.
#   make            library (static + shared) and the embtune CLI in build/
#   make test       every test in tests/ (the README's test command)
#   make check      the same tests built with AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      speed and memory against the peers, measured in the same run
#   make fuzz       libFuzzer harnesses (clang); FUZZ_SECONDS=600 make fuzz-run
#   make demo       the whole pipeline on ../shared/corpus with the model2vec fixture
#   make debug      -O0 build in build-debug/

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
PKGS    := libcjson libutf8proc oniguruma libcurl libmicrohttpd poppler-glib libxml-2.0 sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null)

CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -fPIC -pthread \
           -D_GNU_SOURCE -Iinclude -Isrc $(PKG_CFLAGS) $(BLAS_CFLAGS) $(SAN)
LDLIBS  += $(PKG_LIBS) $(BLAS_LIBS) -lm -pthread
LDFLAGS += $(SAN)

LIB_SRCS  := $(sort $(filter-out src/cli%.c,$(wildcard src/*.c)))
CLI_SRCS  := $(sort $(wildcard src/cli*.c))
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/%.o)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test check bench fuzz fuzz-run demo debug clean
all: $(BUILD)/libembtune.a $(BUILD)/libembtune.so $(BUILD)/embtune

$(BUILD)/%.o: %.c $(wildcard include/*.h src/*.h) Makefile
	@mkdir -p $(dir $@)
	@echo "CC $<"; $(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libembtune.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libembtune.so: $(LIB_OBJS)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/embtune: $(CLI_OBJS) $(BUILD)/libembtune.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(BUILD)/libembtune.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test_util.h $(BUILD)/libembtune.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(BUILD)/libembtune.a $(LDLIBS)

test: all $(TEST_BINS)
	BUILD=$(BUILD) tests/run.sh

check:
	$(MAKE) BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" test

debug:
	$(MAKE) BUILD=build-debug OPT=-O0 all

BENCH_SRCS := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: bench/%.c $(BUILD)/libembtune.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libembtune.a $(LDLIBS)

bench: all
	bench/run.sh

FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz OPT="-O1 -fno-omit-frame-pointer" \
	    SAN="-fsanitize=fuzzer-no-link,address,undefined -Wno-unknown-warning-option" build-fuzz/libembtune.a
	@mkdir -p build-fuzz/fuzz
	for t in $(FUZZ_TARGETS); do \
	    clang -std=c11 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc $(PKG_CFLAGS) \
	        -fsanitize=fuzzer,address,undefined fuzz/fuzz_$$t.c build-fuzz/libembtune.a \
	        $(LDLIBS) -o build-fuzz/fuzz/$$t || exit 1; \
	done

fuzz-run: fuzz
	for t in $(FUZZ_TARGETS); do \
	    mkdir -p build-fuzz/corpus/$$t; \
	    build-fuzz/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        build-fuzz/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

demo:  # installs missing packages first (scripts/demo.sh), then builds
	MAKE="$(MAKE)" scripts/demo.sh

clean:
	rm -rf build build-asan build-debug build-fuzz
