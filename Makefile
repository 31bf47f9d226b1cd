# hpcflow: every target creates/uses the virtual environment in .venv (Python >= 3.10, no MPI/GPU/apt needed).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch, pinned, installed before hpcflow (whose `nn` extra it then satisfies). pip takes torch 2.13.0 from the indexes
# it is configured with: on plain PyPI, for Linux x86-64, that is the CUDA build (several GB with its nvidia-* wheels);
# it is the CPU build only where pip finds a +cpu wheel (a pip.conf find-links or index that offers one). The CPU
# build from PyTorch's index: make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu (empty by default: no index
# beyond pip's own configuration is contacted).
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
# pytest arguments, e.g. make test PYTEST_ARGS="-m slow"; the suite runs on 2 worker processes (pytest-xdist), a
# test file each at a time (its module fixtures built once), the files of few long tests first (tests/conftest.py:
# FIRST; --no-loadscope-reorder keeps that order); PYTEST_ARGS='-m "not slow" -n 0' runs it in one
PYTEST_ARGS ?= -m "not slow" -n 2 --dist loadfile --no-loadscope-reorder --durations=25

.PHONY: venv run test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"$(if $(TORCH_INDEX), --index-url "$(TORCH_INDEX)")
	$(PY) -m pip install -q -e ".[test,nn,mpich]"
	touch $@

venv: $(VENV)/.installed

## run: the main job on 2 MPI ranks (jobs/quickstart.toml: clustered Gaussian-kernel metric flow, checkpoints), then its report
run: venv
	mkdir -p runs
	$(VENV)/bin/mpiexec -n 2 $(VENV)/bin/hpcflow run jobs/quickstart.toml --out runs/quickstart --force
	$(VENV)/bin/hpcflow report runs/quickstart --out runs/quickstart_report --force

## test: the whole test suite (MPI tests included, slow runs excluded); hpcflow and the tests byte-compiled first:
## where PYTHONDONTWRITEBYTECODE is set, each of the suite's launches of Python (`python -m hpcflow`, MPI ranks)
## otherwise compiles every hpcflow module it imports again (0.1-0.2 s of CPU each)
test: venv
	$(PY) -m compileall -q hpcflow tests
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: venv
	$(PY) benchmarks/bench_sampler.py

clean:
	rm -rf $(VENV) runs .pytest_cache
