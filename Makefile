# Inlet: `make dev` runs the local stack, `make test` runs every test (README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TASKS_VENV := .venv-tasks

.PHONY: dev test lint format lock dev-token send-event backfill admin-key bench clean preview deploy chromium

# The project's environment: pinned, hashed dependencies from requirements.lock.
$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# gcloud-tasks-emulator pins an old protobuf, so it lives in its own environment.
$(TASKS_VENV)/.installed: devstack/tasks-emulator.lock
	$(PYTHON) -m venv $(TASKS_VENV)
	$(TASKS_VENV)/bin/pip install --quiet --disable-pip-version-check -r devstack/tasks-emulator.lock
	touch $@

.venv-tasks: $(TASKS_VENV)/.installed

venv: $(BIN)/.installed $(TASKS_VENV)/.installed

dev: venv
	$(BIN)/python -m devstack.dev

test: venv lint chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The console's browser tests drive Debian's chromium through Playwright (tests/browser/);
# installed when missing, as `make bench` installs wrk.
chromium:
	@command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; } \
		|| { sudo apt-get update && sudo apt-get install -y chromium; }

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Prints only a development session token: make -s dev-token SUB=user_x [ORG=org_y] [ROLE=member]
dev-token: $(BIN)/.installed
	@$(BIN)/python -m devstack.token --sub "$(or $(SUB),user_dev)" --org "$(ORG)" --role "$(or $(ROLE),admin)"

# Signs and posts one event to the demo source: make send-event [BODY='{"amount": 3}']
send-event: $(BIN)/.installed
	@$(BIN)/inlet-send-event $(if $(BODY),--body '$(BODY)')

# Copies existing Clerk objects into Firestore. Needs CLERK_SECRET_KEY; reads .inlet/dev.env
# when present, so against `make dev` only the key is yours to set: make backfill ARGS=--restart
backfill: $(BIN)/.installed
	@set -a; if [ -f .inlet/dev.env ]; then . ./.inlet/dev.env; fi; set +a; \
		$(BIN)/inlet-backfill $(ARGS)

# Deploy (README "Deploy"): the Pulumi CLI runs infra/ with this project's .venv.
# Extra flags through ARGS, e.g. make deploy ARGS=--yes; the stack is the selected one.
preview: $(BIN)/.installed
	pulumi preview $(ARGS)

deploy: $(BIN)/.installed
	pulumi up $(ARGS)

# Prints only one new admin API key for the running `make dev` stack: make -s admin-key [NAME=n]
admin-key: $(BIN)/.installed
	@if [ ! -f .inlet/dev.env ]; then echo "make admin-key: start the stack first (make dev)" >&2; exit 1; fi
	@set -a; . ./.inlet/dev.env; set +a; \
		$(BIN)/inlet-admin-key create --name "$(or $(NAME),dev)"

# Every figure of the README's performance table, against its reference in the same run
# (bench/README.md). Installs wrk, the load generator, when it is missing: make bench [ARGS=--seconds 5]
bench: venv
	@command -v wrk >/dev/null || apt-get install -y wrk || sudo apt-get install -y wrk
	$(BIN)/python -m bench.run $(ARGS)

lock:
	$(PYTHON) -m venv /tmp/inlet-lock && /tmp/inlet-lock/bin/pip install --quiet uv
	/tmp/inlet-lock/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) $(TASKS_VENV) .pytest_cache .ruff_cache
