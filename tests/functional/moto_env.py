"""What every moto-backed test needs: fake credentials, a region, and (stack-findings) account-based endpoints
off, or in-process moto answers some DynamoDB calls with "404 Not yet implemented"."""

from __future__ import annotations

from typing import Any

import pytest

REGION = "us-east-1"
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in MOTO_ENV.items():
        monkeypatch.setenv(name, value)


def network(ec2: Any) -> tuple[str, str]:
    """A VPC with one subnet and one security group: (subnet id, security group id). DNS hostnames are on
    because moto builds a task's ENI with a private DNS name and fails without them."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    return subnet, sg
