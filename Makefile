# The README's two commands: `make run` and `make test`. Both set up .venv and the
# build first, and both are quick when nothing changed (stamps and make's own timestamps).
PY      := .venv/bin/python
VENV_OK := .venv/.stamp-deps
BUILD_OK := build/.stamp-ext
PYC_OK  := build/.stamp-pyc
PY_SRC  := $(shell find mpiray -name '*.py')
DEPS    := mpich mpi4py numpy cloudpickle posix_ipc cython pytest pytest-mpi "setuptools>=68" wheel joblib
CXX     ?= g++
CXXFLAGS := -std=c++20 -O2 -g -Wall -Wextra -Isrc/cpp -pthread
NATIVE_SRC := $(filter-out src/cpp/tests/%,$(wildcard src/cpp/*.cpp))
NATIVE_HDR := $(wildcard src/cpp/*.h)
CPP_TESTS  := $(patsubst src/cpp/tests/%.cpp,build/cpptest/%,$(wildcard src/cpp/tests/*.cpp))
MPI_TIMEOUT := 300

.PHONY: setup build run test cpptest pytest mpitest conformance bench clean

setup: $(VENV_OK)

$(VENV_OK):
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(DEPS)
	# the checkout itself on the venv's path (the extension is built in place)
	$(PY) -c "import site, sys; open(site.getsitepackages()[0] + '/mpiray-checkout.pth', 'w').write(sys.argv[1])" "$(CURDIR)"
	touch $@

$(BUILD_OK): $(VENV_OK) setup.py $(wildcard mpiray/_native/*.pyx mpiray/_native/*.pxd) $(NATIVE_SRC) $(NATIVE_HDR)
	$(PY) setup.py -q build_ext --inplace
	@mkdir -p build && touch $@

# Bytecode made once here: where PYTHONDONTWRITEBYTECODE is set, Python would otherwise
# compile the package from source in every process (the driver, and the zygote that
# init() waits for), ~45 ms each on this machine (init to a first result: 0.17 -> 0.10 s).
$(PYC_OK): $(VENV_OK) $(PY_SRC)
	$(PY) -m compileall -q mpiray >/dev/null
	@mkdir -p build && touch $@

build: $(BUILD_OK) $(PYC_OK)

run: build
	$(PY) examples/tree_reduce.py
	$(PY) examples/monte_carlo_pi.py
	@for ex in examples/counter_actor.py examples/parameter_server.py examples/streaming_pipeline.py; do \
	  if [ -f $$ex ]; then echo "== $$ex"; $(PY) $$ex || exit 1; fi; done

build/cpptest/%: src/cpp/tests/%.cpp $(NATIVE_SRC) $(NATIVE_HDR) $(wildcard src/cpp/tests/*.h)
	@mkdir -p build/cpptest
	$(CXX) $(CXXFLAGS) -o $@ $< $(NATIVE_SRC) -lrt

cpptest: $(CPP_TESTS)
	@for t in $(CPP_TESTS); do echo "== $$t"; timeout 300 $$t || exit 1; done

pytest: build
	$(PY) -m pytest tests -q -p no:cacheprovider

# Each rank gets its own --basetemp (pytest-mpi ranks otherwise race cleaning it),
# and every run is under `timeout` so a hang fails instead of blocking CI.
mpitest: build
	@if ls tests/mpi/test_*.py >/dev/null 2>&1; then \
	  for n in 2 4; do for per_rank in 0 1; do \
	    echo "== mpiexec -n $$n (MPIRAY_NODE_PER_RANK=$$per_rank)"; \
	    MPIRAY_NODE_PER_RANK=$$per_rank timeout $(MPI_TIMEOUT) .venv/bin/mpiexec -n $$n \
	      $(CURDIR)/$(PY) -m pytest tests/mpi --with-mpi -q -p no:cacheprovider \
	      --basetemp=/tmp/mpiray-pytest-$$USER-$$n-$$per_rank || exit 1; \
	  done; done; \
	else echo "(no MPI tests yet)"; fi

# Ray's API suite from ../shared (when it is there): on one host, and under mpiexec -n 3
# with the driver on rank 0 (docs/mpi.md lists what differs with a node per rank).
CONFORMANCE := $(wildcard ../shared/conformance/public)
conformance: build
	@if [ -n "$(CONFORMANCE)" ]; then \
	  RAY_IMPL=mpiray timeout $(MPI_TIMEOUT) $(PY) -m pytest $(CONFORMANCE) -q -p no:cacheprovider || exit 1; \
	  RAY_IMPL=mpiray timeout $(MPI_TIMEOUT) .venv/bin/mpiexec -n 3 $(CURDIR)/$(PY) -m pytest \
	    $(CONFORMANCE) -q -p no:cacheprovider || exit 1; \
	else echo "(no ../shared/conformance: skipped)"; fi

test: cpptest pytest mpitest conformance

bench: build
	$(PY) benchmarks/store.py
	$(PY) benchmarks/task_queue.py

clean:
	rm -rf build mpiray/_native/*.so mpiray/_native/*.cpp
