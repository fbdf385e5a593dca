# The two doors: `make run` and `make test`. Both build .venv from pinned requirements when it is missing or stale.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
STATE_DIR ?= ./.batchplane

.PHONY: run test lint unit functional e2e bench package deploy clean venv demo

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# chalice pins pip<26.3; pin pip here so the bootstrap is the same on every machine.
	$(BIN)/python -m pip install -q "pip>=23,<26.3"
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# --allow-host-path: the demo's job definitions mount ./.batchplane-demo (demo/pipeline.py); nothing else of the host.
run: $(STAMP)
	$(BIN)/batchplane up --host $(HOST) --port $(PORT) --state-dir $(STATE_DIR) \
		--allow-host-path $(CURDIR)/.batchplane-demo

lint: $(STAMP)
	$(BIN)/ruff check chalicelib app.py tests bench demo
	$(BIN)/ruff format --check chalicelib app.py tests bench demo
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

# The AWS deployment, built offline (no AWS credentials): Chalice's SAM template merged with infra/resources.json
# and the Lambda bundle, in build/package. Deploy it as README "Deploy to AWS" shows (docs/adr/0007).
package: $(STAMP)
	rm -rf build/package
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(BIN)/chalice package --stage dev \
		--merge-template infra/resources.json build/package
	$(BIN)/cfn-lint build/package/sam.json

# Package and deploy in one command, with the AWS CLI and your credentials: make deploy BUCKET=my-artefacts
# [STACK=batchplane] [PARAMS="StateChangeEvents=ALL Ec2ComputeEnvironment=spot-ec2 ..."]. BUCKET holds the Lambda
# bundle; PARAMS are the stack's --parameter-overrides (README "Deploy to AWS").
STACK ?= batchplane
deploy: package
	@test -n "$(BUCKET)" || { echo "usage: make deploy BUCKET=<S3 bucket for the bundle> [STACK=batchplane] [PARAMS='Key=Value ...']" >&2; exit 2; }
	aws cloudformation package --template-file build/package/sam.json --s3-bucket $(BUCKET) \
		--output-template-file build/package/packaged.json --use-json
	aws cloudformation deploy --template-file build/package/packaged.json --stack-name $(STACK) \
		--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND $(if $(PARAMS),--parameter-overrides $(PARAMS),)
	aws cloudformation describe-stacks --stack-name $(STACK) --query "Stacks[0].Outputs" --output table

# A small pipeline (split -> array -> merge -> a step that fails once and is retried) against `make run` in another
# terminal, then `batchplane watch` on it until it is done. Its data goes to ./.batchplane-demo.
demo: $(STAMP)
	$(BIN)/python demo/pipeline.py --endpoint http://$(HOST):$(PORT) --watch

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(WORKLOAD),--workload $(WORKLOAD),)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
