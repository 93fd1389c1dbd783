"""Fixtures of the AWS emulator (imported by name: no pytest_plugins outside the root)."""

from tests.support.aws_emulator import aws_client, aws_emulator, aws_env

__all__ = ["aws_client", "aws_emulator", "aws_env"]
