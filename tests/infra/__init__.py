"""Tests of the Pulumi program (infra/), under Pulumi's mocks."""
