# Inlet: `make dev` runs the local stack, `make test` runs every test (README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TASKS_VENV := .venv-tasks

# make dev's state (dev.env, the development signing key); the helpers below read the same.
STATE := $(or $(INLET_STATE_DIR),.inlet)

.PHONY: dev test lint format lock dev-token send-event clerk-event backfill admin-key bench clean \
	preview deploy smoke chromium

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

# Prints only a development session token, valid one hour (Clerk's live 60 s):
# make -s dev-token SUB=user_x [ORG=org_y] [ROLE=admin|member]; SUB defaults to user_dev, ROLE
# (the organization role, with ORG) to admin. With TASK=1, a task token for the /tasks/* routes
# instead (what Cloud Scheduler attaches).
dev-token: $(BIN)/.installed
	@INLET_STATE_DIR=$(abspath $(STATE)) $(BIN)/python -m devstack.token --sub "$(or $(SUB),user_dev)" --org "$(ORG)" --role "$(or $(ROLE),admin)" $(if $(TASK),--task)

# Signs and posts one event to the demo source: make send-event [BODY='{"amount": 3}']; without
# BODY it sends {"type": "order.paid", "amount": 42.5, "currency": "EUR"}.
send-event: $(BIN)/.installed
	@INLET_STATE_DIR=$(abspath $(STATE)) $(BIN)/inlet-send-event $(if $(BODY),--body '$(BODY)')

# Signs (svix) and posts one Clerk webhook event to the running stack's clerk-sync:
# make clerk-event TYPE=user.created|user.updated|user.deleted|organization.created|
#   organization.updated|organization.deleted|organizationMembership.created|
#   organizationMembership.updated|organizationMembership.deleted [SUB=user_x] [ORG=org_y]
#   [ROLE=admin|member] [DATA='{"first_name": "Ada"}']; SUB defaults to the demo user, ROLE to
# admin (a membership's role); organization events need ORG.
clerk-event: $(BIN)/.installed
	@INLET_STATE_DIR=$(abspath $(STATE)) $(BIN)/python -m devstack.clerk_event --type "$(TYPE)" --sub "$(SUB)" --org "$(ORG)" \
		--role "$(or $(ROLE),admin)" $(if $(DATA),--data '$(DATA)')

# Copies existing Clerk objects into Firestore. Needs CLERK_SECRET_KEY; reads .inlet/dev.env
# when present, so against `make dev` only the key is yours to set: make backfill ARGS=--restart
backfill: $(BIN)/.installed
	@set -a; if [ -f $(STATE)/dev.env ]; then . $(STATE)/dev.env; fi; set +a; \
		$(BIN)/inlet-backfill $(ARGS)

# Deploy (docs/deploy.md): the Pulumi CLI runs infra/ with this project's .venv.
# Extra flags through ARGS, e.g. make deploy ARGS=--yes; the stack is the selected one.
preview: $(BIN)/.installed
	pulumi preview $(ARGS)

deploy: $(BIN)/.installed
	pulumi up $(ARGS)

# After a deploy (docs/deploy.md): one signed event to the deployed ingest, read back through
# the query API; exits non-zero on failure. TOKEN: an admin API key or a Clerk session token.
# make smoke INGEST_URL=… QUERY_URL=… SOURCE_ID=… SECRET=… TOKEN=…
smoke: $(BIN)/.installed
	@$(BIN)/python -m devstack.smoke

# Prints only one new admin API key for the running `make dev` stack: make -s admin-key [NAME=n]
admin-key: $(BIN)/.installed
	@if [ ! -f $(STATE)/dev.env ]; then echo "make admin-key: start the stack first (make dev)" >&2; exit 1; fi
	@set -a; . $(STATE)/dev.env; set +a; \
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
