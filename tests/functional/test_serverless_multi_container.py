"""Multi-container jobs on the serverless runtime, on moto (the harness of test_serverless_e2e.py): one ECS task
definition holding every container (essential and dependsOn passed to ECS), the job's exit following its essential
containers as the STOPPED task state change reports them (docs/adr/0028)."""

from __future__ import annotations

from bench.aws_harness import CLUSTER, EXEC_ROLE, IMAGE, Deployment, set_up
from tests.multi_container_support import containers_of, fargate_task, member

AFTER_SIDE_STARTED = [{"containerName": "side", "condition": "START"}]


def register(deployment: Deployment) -> None:
    side = member("side", None, image=IMAGE, memory="512", essential=False)
    main = member("main", ["echo", "Ref::word"], image=IMAGE, memory="512", dependsOn=AFTER_SIDE_STARTED)
    request = fargate_task("pair", side, main, execution_role=EXEC_ROLE, parameters={"word": "hello"})
    deployment.batch.register_job_definition(**request)


def test_a_multi_container_job_runs_as_one_ecs_task(deployment: Deployment) -> None:
    world, batch = deployment.world, deployment.batch
    # GIVEN a Fargate Spot queue and a two-container definition
    set_up(deployment)
    register(deployment)

    def submit(name: str) -> str:
        job_id = str(batch.submit_job(jobName=name, jobQueue="q", jobDefinition="pair")["jobId"])
        world.names[job_id] = name
        return job_id

    # WHEN one job's containers all exit 0 and another's essential container exits 3 (its sidecar is stopped: 143)
    world.plan.outcomes = {"bad": ["exit:main=3,side=143"]}
    good, bad = submit("good"), submit("bad")
    world.settle()

    # THEN ECS ran one task per job, from one task definition with both containers as defined
    arns = world.ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
    arns += world.ecs.list_tasks(cluster=CLUSTER)["taskArns"]
    tasks = world.ecs.describe_tasks(cluster=CLUSTER, tasks=list(dict.fromkeys(arns)))["tasks"]
    assert len(tasks) == 2
    definition = world.ecs.describe_task_definition(taskDefinition=tasks[0]["taskDefinitionArn"])["taskDefinition"]
    by_name = {c["name"]: c for c in definition["containerDefinitions"]}
    assert by_name["side"]["essential"] is False and by_name["main"]["essential"] is True
    assert by_name["main"]["dependsOn"] == [{"containerName": "side", "condition": "START"}]
    assert by_name["main"]["logConfiguration"]["options"]["awslogs-stream-prefix"] == "pair"
    assert definition["cpu"] == "512" and definition["memory"] == "1024"  # the sum of the containers
    overrides = {o["name"]: o for o in tasks[0]["overrides"]["containerOverrides"]}
    assert overrides["main"]["command"] == ["echo", "hello"]  # Ref:: parameters substituted
    env = {e["name"]: e["value"] for e in overrides["side"]["environment"]}
    assert env["AWS_BATCH_JQ_NAME"] == "q" and env["AWS_BATCH_JOB_ATTEMPT"] == "1"

    # ... the good job succeeded, the bad one failed with its essential container's exit code
    jobs = {j["jobName"]: j for j in batch.describe_jobs(jobs=[good, bad])["jobs"]}
    assert jobs["good"]["status"] == "SUCCEEDED", jobs["good"].get("statusReason")
    assert jobs["bad"]["status"] == "FAILED"
    assert jobs["bad"]["statusReason"] == "Essential container in task exited"
    bad_containers = containers_of(jobs["bad"])
    assert bad_containers["main"]["exitCode"] == 3 and bad_containers["side"]["exitCode"] == 143
    task = jobs["bad"]["ecsProperties"]["taskProperties"][0]
    task_id = task["taskArn"].rsplit("/", 1)[1]
    assert bad_containers["main"]["logStreamName"] == f"pair/main/{task_id}"
    attempt = jobs["bad"]["attempts"][0]["taskProperties"][0]
    assert {c["name"]: c["exitCode"] for c in attempt["containers"]} == {"side": 143, "main": 3}


def test_task_modes_storage_platform_and_container_timeouts_reach_ecs(deployment: Deployment) -> None:
    world, batch = deployment.world, deployment.batch
    set_up(deployment)
    # GIVEN a Fargate definition with the task's pidMode, ephemeralStorage, runtimePlatform and per-container timeouts
    platform = {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"}
    side = member("side", None, image=IMAGE, memory="512", essential=False, startTimeout=30)
    main = member("main", None, image=IMAGE, memory="512", stopTimeout=90, dependsOn=AFTER_SIDE_STARTED)
    task = {"pidMode": "task", "ephemeralStorage": {"sizeInGiB": 40}, "runtimePlatform": platform}
    batch.register_job_definition(**fargate_task("modes", side, main, execution_role=EXEC_ROLE, task=task))
    # WHEN a job of it runs
    job_id = str(batch.submit_job(jobName="modes", jobQueue="q", jobDefinition="modes")["jobId"])
    world.names[job_id] = "modes"
    world.settle()
    # THEN ECS's task definition carries them as ECS's own fields
    arns = world.ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
    arns += world.ecs.list_tasks(cluster=CLUSTER)["taskArns"]
    task = world.ecs.describe_tasks(cluster=CLUSTER, tasks=list(dict.fromkeys(arns)))["tasks"][0]
    definition = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert definition["pidMode"] == "task"
    assert definition["ephemeralStorage"] == {"sizeInGiB": 40}
    assert definition["runtimePlatform"] == platform
    by_name = {c["name"]: c for c in definition["containerDefinitions"]}
    assert by_name["side"]["startTimeout"] == 30 and by_name["main"]["stopTimeout"] == 90
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUCCEEDED"
