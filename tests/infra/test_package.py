"""`make package` offline: `chalice package --merge-template infra/resources.json` into a temporary directory, then
cfn-lint on the SAM template and on the CloudFormation the SAM transform makes of it (aws-sam-translator, offline),
and the deployment's invariants: no placeholder survives the merge, every API method requires SigV4, the table is
the one the DynamoDB adapter creates, poison events go to dead-letter queues, and every function's IAM policy is
least privilege.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute import ecs_events
from chalicelib.runtime import stream

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLACEHOLDER = "set-by-infra-resources-json"
FUNCTIONS = {
    "APIHandler": "policy-api.json",
    "OnJobChange": "policy-stream.json",
    "Dispatch": "policy-dispatch.json",
    "OnEcsTaskEvent": "policy-task-events.json",
    "OnEc2Event": "policy-task-events.json",
    "Sweep": "policy-sweep.json",
    "ReconcileCapacity": "policy-capacity.json",
    "OnObjectCreated": "policy-triggers.json",
    "OnSchedule": "policy-triggers.json",
}
ASYNC_FUNCTIONS = ("OnEcsTaskEvent", "OnEc2Event", "Sweep", "ReconcileCapacity", "OnObjectCreated", "OnSchedule")


def _offline_env(tmp: Path) -> dict[str, str]:
    """No AWS credentials and no AWS config reachable: packaging must not need them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("package")
    out = tmp / "out"
    cmd = [
        str(BIN / "chalice"),
        "--project-dir",
        str(ROOT),
        "package",
        "--stage",
        "dev",
        "--merge-template",
        str(ROOT / "infra" / "resources.json"),
        str(out),
    ]
    done = subprocess.run(cmd, env=_offline_env(tmp), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    yield out


@pytest.fixture(scope="module")
def sam(package: Path) -> dict[str, Any]:
    template: dict[str, Any] = json.loads((package / "sam.json").read_text())
    return template


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any], package: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What CloudFormation's SAM transform makes of the template (CodeUri as `aws cloudformation package` sets it)."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    template = json.loads(json.dumps(sam))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://deployment-bucket/deployment.zip"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        transformed: dict[str, Any] = transform(template, {}, NoManagedPolicies())
    (package / "cfn.json").write_text(json.dumps(transformed, indent=1))
    return transformed


def _lint(path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "cfn-lint"), str(path)], capture_output=True, text=True, timeout=300, env=_offline_env(path.parent)
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- the artefacts ---------------------------------------------------------------------------------------------------


def test_packaging_builds_the_bundle_and_a_template_without_aws_credentials(package: Path) -> None:
    assert (package / "deployment.zip").stat().st_size > 1_000_000
    assert (package / "sam.json").is_file()


def test_the_sam_template_passes_cfn_lint(package: Path, sam: dict[str, Any]) -> None:
    _lint(package / "sam.json")


def test_the_transformed_cloudformation_passes_cfn_lint(package: Path, cfn: dict[str, Any]) -> None:
    _lint(package / "cfn.json")


def test_no_placeholder_survives_the_merge(sam: dict[str, Any]) -> None:
    assert PLACEHOLDER not in json.dumps(sam)


def test_every_function_gets_the_stack_settings(cfn: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        variables = cfn["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert variables["BATCHPLANE_RUNTIME"] == "aws", name
        assert variables["BATCHPLANE_TABLE"] == {"Ref": "JobsTable"}, name
        assert variables["BATCHPLANE_DISPATCH_QUEUE_URL"] == {"Ref": "DispatchQueue"}, name


def test_every_function_runs_on_arm64_and_the_cost_model_prices_arm64(cfn: dict[str, Any]) -> None:
    from bench.aws_harness import LAMBDA_ARCHITECTURE, LAMBDA_GB_SECOND, PRICES

    # GIVEN every Lambda function of the deployed stack (after the SAM transform)
    functions = {k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    assert set(FUNCTIONS) <= set(functions)

    # THEN each runs on Graviton (arm64), which costs 20% less per GB-second than x86_64 ...
    for name, properties in functions.items():
        assert properties.get("Architectures") == ["arm64"], name
    # ... and the cost model (docs/performance.md "AWS cost per job") prices the duration of that architecture
    assert LAMBDA_ARCHITECTURE == "arm64"
    assert PRICES["lambda_gb_second"] == LAMBDA_GB_SECOND["arm64"] == 0.0000133334


def test_the_bundle_is_pure_python_so_any_architecture_runs_it(package: Path) -> None:
    import zipfile

    # Chalice builds the bundle on this machine: a compiled extension in it would be for this machine's
    # architecture, not necessarily the functions' (arm64). Every dependency must be a pure-Python wheel.
    with zipfile.ZipFile(package / "deployment.zip") as bundle:
        names = bundle.namelist()
        compiled = [n for n in names if n.endswith((".so", ".pyd", ".dylib")) or ".so." in n]
        wheels = {n: bundle.read(n).decode() for n in names if n.endswith(".dist-info/WHEEL")}
    assert compiled == []
    assert {"boto3", "botocore", "pynamodb", "aws_lambda_powertools", "rich"} <= {n.split("-", 1)[0] for n in wheels}
    for name, metadata in wheels.items():
        tags = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Tag:")]
        assert "Root-Is-Purelib: true" in metadata, name
        assert tags and all(tag.endswith("-none-any") for tag in tags), (name, tags)


# -- the API: IAM on every method -------------------------------------------------------------------------------------


def test_every_api_method_requires_sigv4(sam: dict[str, Any]) -> None:
    body = sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert body["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    methods = [(path, verb, op) for path, ops in body["paths"].items() for verb, op in ops.items() if verb != "options"]
    assert len(methods) >= 5
    for path, verb, op in methods:
        assert op.get("security") == [{"sigv4": []}], (verb, path)


def test_the_http_api_serves_every_route_of_the_app_with_iam(cfn: dict[str, Any]) -> None:
    from app import app

    # GIVEN the HTTP API the stack puts beside the REST API (ADR 0012)
    body = cfn["Resources"]["HttpAPI"]["Properties"]["Body"]
    routes = {(path, verb.upper()): op for path, ops in body["paths"].items() for verb, op in ops.items()}

    # THEN it has every route of the app (tags as a greedy {proxy+}, which rest_api_event maps back) ...
    expected = {
        (path.replace("/v1/tags/{resource_arn}", "/v1/tags/{proxy+}"), method)
        for path, methods in app.routes.items()
        for method in methods
    }
    assert set(routes) == expected
    for key, op in routes.items():
        # ... each behind IAM, to the API Lambda, in payload format 1.0 (the shape Chalice's handler reads)
        assert op["security"] == [{"AWS_IAM": []}], key
        integration = op["x-amazon-apigateway-integration"]
        assert integration["payloadFormatVersion"] == "1.0", key
        assert "${APIHandler.Arn}" in json.dumps(integration["uri"]), key
    # ... and API Gateway may invoke the Lambda for each (a permission ARN with a "{" would match no request)
    permissions = [
        r["Properties"]
        for k, r in cfn["Resources"].items()
        if r["Type"] == "AWS::Lambda::Permission" and k.startswith("APIHandlerHttpApi")
    ]
    assert len(permissions) == len(routes)
    assert not any("{" in p["SourceArn"]["Fn::Sub"][0].replace("${", "") for p in permissions)


def test_callers_may_use_any_endpoint_and_find_them_in_the_outputs(cfn: dict[str, Any]) -> None:
    execute_api, url, invoke = cfn["Resources"]["ClientPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert execute_api["Action"] == "execute-api:Invoke"
    assert [json.dumps(r) for r in execute_api["Resource"]] == [
        json.dumps({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${RestAPI}/api/*"}),
        json.dumps({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpAPI}/*"}),
    ]
    assert "${HttpAPI}.execute-api." in json.dumps(cfn["Outputs"]["HttpApiURL"]["Value"])
    # the function URL (ADR 0014): both actions a new function URL requires, on the API function only
    api_function = {"Fn::GetAtt": ["APIHandler", "Arn"]}
    assert url == {
        "Effect": "Allow",
        "Action": "lambda:InvokeFunctionUrl",
        "Resource": api_function,
        "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
    }
    assert invoke == {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": api_function}


def test_the_api_function_has_a_function_url_behind_iam(cfn: dict[str, Any]) -> None:
    # GIVEN the function URL the stack puts beside the two APIs (ADR 0014; SAM's FunctionUrlConfig)
    urls = {k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Url"}

    # THEN there is one, on the API function, IAM-authenticated, answering when the function returns
    assert list(urls) == ["APIHandlerUrl"]
    url = urls["APIHandlerUrl"]
    assert url["TargetFunctionArn"] == {"Ref": "APIHandler"}
    assert url["AuthType"] == "AWS_IAM"
    assert url.get("InvokeMode", "BUFFERED") == "BUFFERED"
    # AND no resource policy opens it: callers in the account need the ClientPolicy's identity-based permissions
    # (SAM adds a public permission only for AuthType NONE)
    url_permissions = [
        r["Properties"]
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission"
        and ("FunctionUrlAuthType" in r["Properties"] or r["Properties"].get("InvokedViaFunctionUrl"))
    ]
    assert url_permissions == []
    # AND the stack's outputs name it
    assert cfn["Outputs"]["FunctionUrl"]["Value"] == {"Fn::GetAtt": ["APIHandlerUrl", "FunctionUrl"]}


# -- the table ---------------------------------------------------------------------------------------------------------


def test_the_table_is_the_one_the_dynamodb_adapter_creates(
    sam: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the table as the adapter creates it (tests, DynamoDB Local) ...
    import boto3
    from moto import mock_aws

    from chalicelib.store.dynamo import DynamoItemStore

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        DynamoItemStore("t", region="us-east-1").create_table(wait=False)
        live = boto3.client("dynamodb", region_name="us-east-1").describe_table(TableName="t")["Table"]

    # ... THEN infra creates the same keys, indexes and stream
    props = sam["Resources"]["JobsTable"]["Properties"]

    def indexes(gsis: list[dict[str, Any]]) -> dict[str, Any]:
        return {g["IndexName"]: (g["KeySchema"], g["Projection"]["ProjectionType"]) for g in gsis}

    assert props["KeySchema"] == live["KeySchema"]
    by_name = lambda defs: sorted(defs, key=lambda d: d["AttributeName"])  # noqa: E731
    assert by_name(props["AttributeDefinitions"]) == by_name(live["AttributeDefinitions"])
    assert indexes(props["GlobalSecondaryIndexes"]) == indexes(live["GlobalSecondaryIndexes"])
    assert props["StreamSpecification"]["StreamViewType"] == live["StreamSpecification"]["StreamViewType"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    # AND finished jobs expire through the attribute the adapter writes (store/jobs.py RETENTION_SECONDS)
    ttl = props["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": DynamoItemStore("t", region="us-east-1").record.ttl.attr_name, "Enabled": True}


# -- event sources and dead letters ---------------------------------------------------------------------------------


def test_the_job_stream_reports_partial_failures_and_dead_letters_poison_records(cfn: dict[str, Any]) -> None:
    (mapping,) = [
        r["Properties"]
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and r["Properties"]["FunctionName"] == {"Ref": "OnJobChange"}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["JobsTable", "StreamArn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["StreamDeadLetterQueue", "Arn"]}
    # only job records, and unless every state change is published, only those in a state the handler reacts to
    condition, every, reacting = mapping["FilterCriteria"]["Filters"]["Fn::If"]
    assert cfn["Conditions"][condition] == {"Fn::Equals": [{"Ref": "StateChangeEvents"}, "ALL"]}
    assert [json.loads(f["Pattern"]) for f in every] == [{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "JOB#"}]}}}}]
    assert [json.loads(f["Pattern"]) for f in every] == stream.filter_patterns("ALL")
    assert [json.loads(f["Pattern"]) for f in reacting] == stream.filter_patterns("TERMINAL")
    assert stream.filter_patterns("NONE") == stream.filter_patterns("TERMINAL")


def test_which_state_changes_are_published_is_a_stack_parameter(cfn: dict[str, Any]) -> None:
    parameter = cfn["Parameters"]["StateChangeEvents"]
    assert parameter["AllowedValues"] == list(stream.STATE_CHANGE_EVENTS)
    assert parameter["Default"] == stream.DEFAULT_STATE_CHANGE_EVENTS
    for name in FUNCTIONS:
        variables = cfn["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert variables["BATCHPLANE_STATE_CHANGE_EVENTS"] == {"Ref": "StateChangeEvents"}, name


def test_the_dispatcher_reads_its_fifo_queue_one_batch_at_a_time(cfn: dict[str, Any]) -> None:
    (mapping,) = [
        r["Properties"]
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and r["Properties"]["FunctionName"] == {"Ref": "Dispatch"}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["DispatchQueue", "Arn"]}
    assert mapping.get("MaximumBatchingWindowInSeconds", {"Ref": "AWS::NoValue"}) == {"Ref": "AWS::NoValue"}
    queue = cfn["Resources"]["DispatchQueue"]["Properties"]
    assert queue["FifoQueue"] is True
    assert queue["VisibilityTimeout"] >= cfn["Resources"]["Dispatch"]["Properties"]["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DispatchDeadLetterQueue", "Arn"]}


def test_every_eventbridge_target_has_a_dead_letter_queue(cfn: dict[str, Any]) -> None:
    rules = {k: r for k, r in cfn["Resources"].items() if r["Type"] == "AWS::Events::Rule"}
    assert len(rules) == 5  # ECS tasks, EC2 instances, S3 objects, sweep, capacity
    for name, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}, name


def test_every_asynchronously_invoked_function_dead_letters_its_failures(cfn: dict[str, Any]) -> None:
    for name in ASYNC_FUNCTIONS:
        dlq = cfn["Resources"][name]["Properties"]["DeadLetterConfig"]
        assert dlq == {"TargetArn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}, name


def test_ecs_task_events_are_those_of_the_stacks_cluster(cfn: dict[str, Any]) -> None:
    (rule,) = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::Events::Rule" and "aws.ecs" in json.dumps(r)]
    detail = rule["Properties"]["EventPattern"]["detail"]
    assert detail["clusterArn"] == [{"Fn::GetAtt": ["Cluster", "Arn"]}]
    assert detail["group"] == [{"prefix": "batchplane:"}]
    # only the task states that change a job invoke the Lambda (RUNNING and STOPPED, 2 of a task's 9 events)
    assert {k: v for k, v in detail.items() if k != "clusterArn"} == ecs_events.task_pattern()["detail"]


# -- least privilege ---------------------------------------------------------------------------------------------------

# Actions without resource-level permissions (the service authorization reference lists only "*" for them).
STAR_OK = {
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
    "ecs:ListTasks",
    "autoscaling:DescribeAutoScalingGroups",
}
TABLE = {"Fn::GetAtt": ["JobsTable", "Arn"]}
INDEXES = {"Fn::Sub": "${JobsTable.Arn}/index/*"}
STREAM = {"Fn::GetAtt": ["JobsTable", "StreamArn"]}
STREAM_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def violations(document: dict[str, Any], template: dict[str, Any]) -> list[str]:
    """What in an IAM policy document breaks batchplane's least-privilege rules."""
    found: list[str] = []
    queues = {k for k, r in template["Resources"].items() if r.get("Type") == "AWS::SQS::Queue"}
    for st in document["Statement"]:
        sid = st.get("Sid", "?")
        actions, resources = _listify(st["Action"]), _listify(st["Resource"])
        if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
            found.append(f"{sid}: only plain Allow statements")
        for action in actions:
            service, _, name = action.partition(":")
            if action == "*" or name == "*" or "*" in name:
                found.append(f"{sid}: wildcard action {action}")
            if "*" in resources and action not in STAR_OK:
                found.append(f"{sid}: {action} on Resource '*'")
            if action == "ecs:ListTasks" and "*" in resources and "ecs:cluster" not in json.dumps(st.get("Condition")):
                found.append(f"{sid}: ecs:ListTasks on '*' without the cluster condition")
            if service == "dynamodb":
                allowed = [STREAM] if action in STREAM_ACTIONS else [TABLE, INDEXES]
                if any(r not in allowed for r in resources):
                    found.append(f"{sid}: {action} beyond the table (and its indexes / stream)")
            if action == "ecs:RunTask":
                if not all("task-definition/batchplane-*" in json.dumps(r) for r in resources):
                    found.append(f"{sid}: RunTask beyond the batchplane task definitions")
                if "ecs:cluster" not in json.dumps(st.get("Condition")):
                    found.append(f"{sid}: RunTask without the cluster condition")
            if action == "iam:PassRole":
                condition = (st.get("Condition") or {}).get("StringEquals", {})
                passed_to = condition.get("iam:PassedToService")
                if "*" in resources or passed_to not in ("ecs-tasks.amazonaws.com", "scheduler.amazonaws.com"):
                    found.append(f"{sid}: PassRole must name roles and the one service they are passed to")
                if passed_to == "scheduler.amazonaws.com" and resources != [{"Fn::GetAtt": ["SchedulerRole", "Arn"]}]:
                    found.append(f"{sid}: only the stack's SchedulerRole goes to EventBridge Scheduler")
            if service == "sqs" and any(
                not (isinstance(r, dict) and r.get("Fn::GetAtt", [None])[0] in queues) for r in resources
            ):
                found.append(f"{sid}: {action} beyond the stack's queues")
            if service == "events" and any("event-bus/" not in json.dumps(r) for r in resources):
                found.append(f"{sid}: {action} beyond an event bus")
            if service == "logs" and any("/aws/lambda/${AWS::StackName}-" not in json.dumps(r) for r in resources):
                found.append(f"{sid}: {action} beyond the stack's function logs")
    return found


def test_every_function_has_its_own_role_with_its_policy_file(sam: dict[str, Any]) -> None:
    for name, policy_file in FUNCTIONS.items():
        role_ref = sam["Resources"][name]["Properties"]["Role"]
        (policy,) = sam["Resources"][role_ref["Fn::GetAtt"][0]]["Properties"]["Policies"]
        assert policy["PolicyDocument"] == json.loads((ROOT / ".chalice" / policy_file).read_text()), name
    roles = {sam["Resources"][name]["Properties"]["Role"]["Fn::GetAtt"][0] for name in FUNCTIONS}
    assert len(roles) == len(FUNCTIONS)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_policy_is_least_privilege(sam: dict[str, Any], function: str) -> None:
    role = sam["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    for policy in sam["Resources"][role]["Properties"]["Policies"]:
        assert violations(policy["PolicyDocument"], sam) == [], function


def test_the_least_privilege_rules_catch_broad_policies(sam: dict[str, Any]) -> None:
    broad = {
        "Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Sid": "B", "Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Sid": "C", "Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "arn:aws:dynamodb:*:*:table/*"},
            {"Sid": "D", "Effect": "Allow", "Action": "ecs:RunTask", "Resource": "*"},
            {"Sid": "E", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
            {"Sid": "F", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"},
        ]
    }
    flagged = {v.split(":", 1)[0] for v in violations(broad, sam)}
    assert flagged == {"A", "B", "C", "D", "E", "F"}


# -- one command to deploy ----------------------------------------------------------------------------------------


def test_make_deploy_packages_uploads_and_deploys_with_the_stack_parameters() -> None:
    # `make -n` prints what `make deploy` runs without running it; `-o package` leaves the built package alone
    def dry_run(*variables: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-n", "-o", "package", "deploy", *variables], cwd=ROOT, capture_output=True, text=True
        )

    commands = dry_run("BUCKET=my-artefacts", "STACK=bp", "PARAMS=StateChangeEvents=ALL").stdout.replace("\\\n", "")
    lines = [" ".join(line.split()) for line in commands.splitlines() if line.startswith("aws ")]
    assert lines == [
        "aws cloudformation package --template-file build/package/sam.json --s3-bucket my-artefacts "
        "--output-template-file build/package/packaged.json --use-json",
        "aws cloudformation deploy --template-file build/package/packaged.json --stack-name bp "
        "--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --parameter-overrides StateChangeEvents=ALL",
        'aws cloudformation describe-stacks --stack-name bp --query "Stacks[0].Outputs" --output table',
    ]
    # AND without a bucket it stops with its usage before calling AWS
    refused = subprocess.run(
        ["make", "-o", "package", "deploy"], cwd=ROOT, capture_output=True, text=True, env={**os.environ, "BUCKET": ""}
    )
    assert refused.returncode != 0 and "usage: make deploy BUCKET=" in refused.stderr
