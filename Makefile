# `make demo`  create .venv, install core (mypyc-compiled) and every plugin with what they
#              need to run (no test toolchain), run `hub demo`
# `make test`  the same set-up, then ruff, mypy --strict, the whole suite on the compiled
#              core, and the core suite again on the pure-Python build (.venv-pure)
# `make docs`  the SDK docs as a site (MkDocs, strict: a broken link or anchor fails) in build/site
# `make bench` the benchmarks, with ratios against baselines measured in the same run
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PURE := .venv-pure
PIP := --disable-pip-version-check --quiet
PLUGINS := $(sort $(wildcard plugins/*))
SOURCES := $(shell find core plugins -name '*.py' -o -name 'pyproject.toml' -o -name 'setup.py' -o -name 'mypyc.ini' | grep -v '/build/')
DEMO_ARGS ?=

.PHONY: demo test bench docs setup setup-pure lint typecheck pytest pytest-pure wheels clean

demo: $(VENV)/.runtime
	$(VENV)/bin/hub demo $(DEMO_ARGS)

# The runtime alone: pip builds the compiled core in an isolated build env (mypy lives
# there, not in .venv). A test set-up (.installed) is a superset, so it counts too.
$(VENV)/.runtime: $(SOURCES)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP) ./core $(addprefix ./,$(PLUGINS))
	cd /tmp && $(CURDIR)/$(VENV)/bin/python -c 'import hub_core, sys; sys.exit(0 if hub_core.COMPILED else "the installed hub_core is not compiled")'
	touch $@

test: setup lint typecheck docs pytest setup-pure pytest-pure wheels

setup: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt $(SOURCES)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP) -r requirements-dev.txt
	$(VENV)/bin/pip install $(PIP) --no-build-isolation ./core $(addsuffix [test],$(addprefix ./,$(PLUGINS)))
	cd /tmp && $(CURDIR)/$(VENV)/bin/python -c 'import hub_core, sys; print("hub-core", hub_core.__version__, "compiled:", hub_core.COMPILED); sys.exit(0 if hub_core.COMPILED else "the installed hub_core is not compiled")'
	touch $@ $(VENV)/.runtime

setup-pure: $(PURE)/.installed

$(PURE)/.installed: requirements-dev.txt $(SOURCES)
	test -x $(PURE)/bin/python || $(PYTHON) -m venv $(PURE)
	$(PURE)/bin/pip install $(PIP) -r requirements-dev.txt
	HUB_CORE_PURE=1 $(PURE)/bin/pip install $(PIP) --no-build-isolation ./core $(addsuffix [test],$(addprefix ./,$(PLUGINS)))
	cd /tmp && $(CURDIR)/$(PURE)/bin/python -c 'import hub_core, sys; sys.exit("expected the pure build" if hub_core.COMPILED else 0)'
	touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy core/src $(addsuffix /src,$(PLUGINS))

# The configuration reference is generated during the build from the installed models
# (sdk-docs/_hooks/config_reference.py), so it always matches the code.
docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir build/site

pytest: setup
	$(VENV)/bin/python -m pytest tests

pytest-pure: setup-pure
	HUB_EXPECT_PURE=1 $(PURE)/bin/python -m pytest tests/core

# Every distribution builds a wheel, and the wheels install alone in a fresh venv.
wheels: setup
	rm -rf build/wheels build/venv-wheels
	$(VENV)/bin/pip wheel $(PIP) --no-deps --no-build-isolation -w build/wheels ./core $(addprefix ./,$(PLUGINS))
	$(PYTHON) -m venv build/venv-wheels
	build/venv-wheels/bin/pip install $(PIP) build/wheels/*.whl
	cd /tmp && $(CURDIR)/build/venv-wheels/bin/hub --version | grep -q 'compiled with mypyc'
	cd /tmp && $(CURDIR)/build/venv-wheels/bin/hub plugins
	# `hub demo` runs on the runtime alone (what `make demo` installs): no test toolchain
	cd /tmp && $(CURDIR)/build/venv-wheels/bin/python -c 'import importlib.util as u, sys; sys.exit([m for m in ("pytest", "hypothesis", "quickfix", "mypy") if u.find_spec(m)] or 0)'
	cd /tmp && $(CURDIR)/build/venv-wheels/bin/hub demo --duration 3 > /dev/null

bench: setup
	$(VENV)/bin/python benchmarks/compare.py
	$(VENV)/bin/python -m pytest benchmarks --benchmark-only -q -p no:randomly

clean:
	rm -rf $(VENV) $(PURE) build core/build core/build-pure plugins/*/build
