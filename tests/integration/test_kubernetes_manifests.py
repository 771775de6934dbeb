"""examples/kubernetes/: every manifest is valid for the Kubernetes API (kubernetes-validate ships
the schemas, so this runs offline), and the numbers that make a rollout lose no request fit
together: the grace period covers the lame duck plus the drain, liveness never probes the lame-duck
/healthz, and the worker count follows the CPU limit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

MANIFESTS = sorted((REPO / "examples" / "kubernetes").glob("*.yaml"))
# The oldest and the newest API versions the schemas in kubernetes-validate cover that we claim.
KUBERNETES_VERSIONS = ["1.29.0", "1.37.0"]
EXIT_MARGIN_S = 5  # the workers' lifespan shutdown and the arbiter's own exit


def validator() -> str:
    found = Path(sys.executable).with_name("kubernetes-validate")
    return str(found) if found.exists() else shutil.which("kubernetes-validate") or "kubernetes-validate"


def deployment_container() -> tuple[dict, dict]:
    deployment = yaml.safe_load((REPO / "examples" / "kubernetes" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def flag_value(args: list[str], flag: str) -> float:
    assert flag in args, f"{flag} is not in the container's args {args}"
    return float(args[args.index(flag) + 1])


def test_the_examples_have_a_deployment_service_pdb_and_hpa():
    kinds = {yaml.safe_load(path.read_text())["kind"] for path in MANIFESTS}
    assert kinds == {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("manifest", MANIFESTS, ids=[path.name for path in MANIFESTS])
def test_manifest_validates_strictly_against_the_kubernetes_schemas(manifest, version):
    result = subprocess.run([validator(), "--strict", "-k", version, str(manifest)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{manifest.name} against {version}:\n{result.stdout}{result.stderr}"
    assert "passed" in result.stdout, result.stdout


def test_termination_grace_period_covers_the_lame_duck_and_the_graceful_timeout():
    pod, container = deployment_container()
    needed = flag_value(container["args"], "--lame-duck") + flag_value(container["args"], "--graceful-timeout") + EXIT_MARGIN_S
    assert pod["terminationGracePeriodSeconds"] >= needed


def test_readiness_leaves_rotation_before_the_lame_duck_ends():
    _, container = deployment_container()
    readiness = container["readinessProbe"]
    assert readiness["httpGet"]["path"] == "/healthz"
    worst_case = readiness["periodSeconds"] * readiness["failureThreshold"] + readiness["timeoutSeconds"]
    assert worst_case < flag_value(container["args"], "--lame-duck")


def test_liveness_probes_livez_which_stays_200_while_draining():
    _, container = deployment_container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_web_concurrency_comes_from_the_cpu_limit():
    _, container = deployment_container()
    variables = {item["name"]: item for item in container["env"]}
    field = variables["WEB_CONCURRENCY"]["valueFrom"]["resourceFieldRef"]
    assert (field["resource"], field["containerName"]) == ("limits.cpu", container["name"])
    assert "cpu" in container["resources"]["limits"], "without a CPU limit limits.cpu is the whole node"
