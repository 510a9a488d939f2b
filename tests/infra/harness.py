"""Runs the Pulumi program under Pulumi's own mocks and records what it declares.

The mocks answer like Google would for the outputs the program reads back (service account
emails, a bucket's project number, a function's service and URL); every declared resource is
kept with the inputs it was given, in the wire-level camelCase Pulumi sends to providers.
"""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
from pulumi.runtime.mocks import MockMonitor

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "inlet-test-project"
STACK = "test"
PROJECT_NUMBER = 123456789012
REGION = "europe-west1"
WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0xMjM0NQ=="  # noqa: S105 (test value)
CLERK_SECRET_KEY = "sk_test_infra_clerk_backend_key_0123456789"  # noqa: S105
# Two 32-byte keys, current first, as ingest's Keyring wants them.
SOURCE_KEK = (
    "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,"
    "k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
)
SECRETS = {
    "inlet:clerkWebhookSecret": WEBHOOK_SECRET,
    "inlet:clerkSecretKey": CLERK_SECRET_KEY,
    "inlet:sourceKek": SOURCE_KEK,
}
BASE_CONFIG = {
    "gcp:project": PROJECT,
    "gcp:region": REGION,
    "inlet:clerkIssuer": "https://clerk.example.com",
    "inlet:clerkAuthorizedParties": "https://app.example.com",
    "inlet:corsOrigins": "https://app.example.com",
    **SECRETS,
}


@dataclass(frozen=True)
class Declared:
    typ: str
    name: str
    inputs: dict[str, Any]
    depends_on: frozenset[str] = frozenset()  # "type::name" of each explicit dependency
    # "create"; "read" (``Resource.get``: looked up, never created or changed); "import"
    # (adopted: the ``import_`` option, never created)
    mode: str = "create"


@dataclass
class Deployment:
    resources: list[Declared] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Declared]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str) -> Declared:
        found = [r for r in self.resources if r.typ == typ and r.name == name]
        assert len(found) == 1, f"expected one {typ} named {name}, found {len(found)}"
        return found[0]

    def dump(self) -> str:
        return json.dumps([r.inputs for r in self.resources], default=str)


class GoogleLikeMocks(pulumi.runtime.Mocks):
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.dependencies: dict[tuple[str, str], frozenset[str]] = {}
        self.reads: set[tuple[str, str]] = set()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        depends_on = self.dependencies.pop((args.typ, args.name), frozenset())
        mode = "create"
        if args.resource_id:
            mode = "read" if (args.typ, args.name) in self.reads else "import"
        self.deployment.resources.append(Declared(args.typ, args.name, inputs, depends_on, mode))
        outputs = {**inputs, **_computed(args.typ, inputs)}
        return [outputs.get("id", f"{args.name}-id"), outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def _computed(typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs Google fills in that the program reads back."""
    project = inputs.get("project", PROJECT)
    if typ == "gcp:serviceaccount/account:Account":
        email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
        name = f"projects/{project}/serviceAccounts/{email}"
        return {"email": email, "member": f"serviceAccount:{email}", "name": name, "id": name}
    if typ == "random:index/randomId:RandomId":
        return {"hex": "a1b2c3", "b64Url": "obLD", "id": "obLD"}
    if typ == "gcp:secretmanager/secret:Secret":
        name = f"projects/{project}/secrets/{inputs['secretId']}"
        return {"id": name, "name": name}
    if typ == "gcp:secretmanager/secretVersion:SecretVersion":
        return {"version": "1", "name": f"{inputs['secret']}/versions/1"}
    if typ == "gcp:storage/bucket:Bucket":
        return {"projectNumber": PROJECT_NUMBER}
    if typ == "gcp:artifactregistry/repository:Repository":
        repository = inputs["repositoryId"]
        return {
            "id": f"projects/{project}/locations/{inputs['location']}/repositories/{repository}",
            "name": repository,
        }
    if typ == "gcp:cloudfunctionsv2/function:Function":
        name, location = inputs["name"], inputs["location"]
        service_config = {
            **inputs["serviceConfig"],
            "service": f"projects/{project}/locations/{location}/services/{name}",
            "uri": f"https://{name}-x7k2q9-ew.a.run.app",
        }
        return {
            "serviceConfig": service_config,
            "url": f"https://{location}-{project}.cloudfunctions.net/{name}",
        }
    return {}


class DependencyRecordingMonitor(MockMonitor):
    """Pulumi's mock monitor, keeping each registration's explicit dependencies as well."""

    def __init__(self, mocks: GoogleLikeMocks) -> None:
        super().__init__(mocks)
        self._recording = mocks

    def RegisterResource(self, request):  # the gRPC method, named as gRPC names it
        # A URN ends in "::<parent types joined by $, then the type>::<name>".
        names = frozenset(
            f"{urn.split('::')[-2].split('$')[-1]}::{urn.split('::')[-1]}"
            for urn in request.dependencies
        )
        self._recording.dependencies[(request.type, request.name)] = names
        return super().RegisterResource(request)

    def ReadResource(self, request):  # a ``Resource.get``: recorded as read, not created
        self._recording.reads.add((request.type, request.name))
        return super().ReadResource(request)


def deploy(
    config: dict[str, str] | None = None, *, root: Path = ROOT, stack: str = STACK
) -> Deployment:
    """Runs ``infra/__main__.py`` as ``pulumi up`` would for ``stack``, against the mocks."""
    values = dict(BASE_CONFIG if config is None else config)
    deployment = Deployment()
    mocks = GoogleLikeMocks(deployment)
    pulumi.runtime.set_mocks(
        mocks,
        project="inlet",
        stack=stack,
        preview=False,
        monitor=DependencyRecordingMonitor(mocks),
    )
    pulumi.runtime.set_all_config(values, [key for key in values if key in SECRETS])
    pending: dict[str, Any] = {}

    def export(name: str, value: Any) -> None:
        pending[name] = value

    @pulumi.runtime.test
    def run():
        with mock.patch.object(pulumi, "export", export):
            # The directory, as Pulumi runs it: with infra/ itself first on sys.path.
            runpy.run_path(str(root / "infra"), run_name="__main__")
        return pulumi.Output.all(**pending).apply(deployment.exports.update)

    run()
    return deployment
