"""Static checks of terraform/: it parses, is formatted, is wired consistently, names the service
accounts the overlays use, and passes checkov with a justified skip list.

Offline by design: no `terraform init/validate` (no registry access). Each structural check is a
small function, exercised on a deliberately broken snippet as well, so a check that stops finding
problems fails too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from lark.exceptions import LarkError

from tests.deploy.tf_parse import blocks, parse_dir, parse_text, typed_blocks

REPO = Path(__file__).resolve().parents[2]
TF_ROOT = REPO / "terraform"
MODULES = TF_ROOT / "modules"
ENVS = TF_ROOT / "envs"
OVERLAYS = REPO / "kustomize" / "overlays"
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"

NAMESPACE = "lead-scoring"
SERVICE_ACCOUNTS = ("lead-scoring-predictor", "lead-scoring-transformer", "lead-scoring-batch")
# Per stack, as every other AWS name: dev and prod in one account and region must not claim the same secret.
AWS_SECRET_NAME = "${var.name}/api-keys"
AWS_SECRET_PLACEHOLDER = "REPLACE_WITH_API_KEYS_SECRET_NAME"  # the overlays' objectName: Terraform's output
AZURE_SECRET_NAME = "api-keys"
PINNED_VERSION = re.compile(r"^\s*(~>|=)\s*\d")


# --------------------------------------------------------------------------- parsing helpers


def tf_files() -> list[Path]:
    return sorted(p for p in TF_ROOT.rglob("*.tf") if ".terraform" not in p.parts)


def module_dirs() -> list[Path]:
    return sorted({p.parent for p in tf_files()})


# --------------------------------------------------------------------------- checkers


def variable_problems(parsed: dict) -> list[str]:
    """Every variable needs a type and a description; every variable whose type admits a wrong
    value (anything but bool and free-form maps of tags) needs a validation block."""
    problems = []
    for name, body in blocks(parsed, "variable").items():
        var_type = str(body.get("type", ""))
        if not var_type:
            problems.append(f"{name}: no type")
        if not str(body.get("description", "")).strip():
            problems.append(f"{name}: no description")
        needs_validation = var_type not in ("bool", "${bool}") and "map(" not in var_type
        if var_type and needs_validation and not body.get("validation"):
            problems.append(f"{name}: no validation")
    return problems


def module_reference_problems(root: Path) -> list[str]:
    """Local module sources exist; every module.X.Y names an output Y of module X; every argument
    passed to a module is one of its variables and every required variable is passed."""
    problems = []
    parsed = parse_dir(root)
    calls = blocks(parsed, "module")
    declared: dict[str, set[str]] = {}
    for name, body in calls.items():
        source = body["source"]
        if not source.startswith("."):
            if not PINNED_VERSION.match(str(body.get("version", ""))) and not re.match(
                r"^\d+\.\d+\.\d+$", str(body.get("version", ""))
            ):
                problems.append(f"module {name}: registry source {source} without a pinned version")
            continue
        target = (root / source).resolve()
        if not (target.is_dir() and any(target.glob("*.tf"))):
            problems.append(f"module {name}: source {source} does not exist")
            continue
        child = parse_dir(target)
        declared[name] = set(blocks(child, "output"))
        variables = blocks(child, "variable")
        passed = set(body) - {"source", "version", "providers", "depends_on", "count", "for_each"}
        problems += [f"module {name}: passes unknown variable {v}" for v in sorted(passed - set(variables))]
        required = {v for v, b in variables.items() if "default" not in b}
        problems += [f"module {name}: misses required variable {v}" for v in sorted(required - passed)]
    text = "\n".join(p.read_text() for p in sorted(root.glob("*.tf")))
    for module_name, output in re.findall(r"\bmodule\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)", text):
        if module_name not in calls:
            problems.append(f"module.{module_name}.{output}: no module {module_name}")
        elif module_name in declared and output not in declared[module_name]:
            problems.append(f"module.{module_name}.{output}: module declares no output {output}")
    return problems


def provider_pin_problems(versions_tf_text: str) -> list[str]:
    problems = []
    parsed = parse_text(versions_tf_text)
    providers = {}
    for terraform_block in parsed.get("terraform", []):
        for required in terraform_block.get("required_providers", []):
            providers.update(required)
    if not providers:
        problems.append("no required_providers")
    for name, spec in providers.items():
        version = spec.get("version", "") if isinstance(spec, dict) else ""
        if not PINNED_VERSION.match(version):
            problems.append(f"provider {name}: version {version!r} is not pinned with ~> or =")
    return problems


def trust_subjects(parsed: dict) -> dict[str, set[str]]:
    """Subjects of the `<oidc>:sub` conditions, per IAM policy document instance: `name`, or `name[key]` for each key
    of a `for_each` map, with `each.value` and the module's `local.*` strings substituted as Terraform would."""
    local = {k: v for block in parsed.get("locals", []) for k, v in block.items() if isinstance(v, str)}

    def resolved(text: str, each: str | None = None) -> str:
        if each is not None:
            text = text.replace("${each.value}", each)
        return re.sub(r"\$\{local\.(\w+)\}", lambda m: local.get(m[1], m[0]), text)

    found: dict[str, set[str]] = {}
    for name, body in typed_blocks(parsed, "data", "aws_iam_policy_document").items():
        values = [
            value
            for statement in body.get("statement", [])
            for condition in statement.get("condition", [])
            if str(condition.get("variable", "")).endswith(":sub")
            for value in condition.get("values", [])
        ]
        if not values:
            continue
        instances = body.get("for_each")
        if isinstance(instances, dict):
            for key, each in instances.items():
                found[f"{name}[{key}]"] = {resolved(v, resolved(each)) for v in values}
        else:
            found[name] = {resolved(v) for v in values}
    return found


def irsa_subjects(parsed: dict) -> set[str]:
    """Subjects of the `<oidc>:sub` conditions of every IAM trust policy document."""
    return set().union(*trust_subjects(parsed).values())


def federated_subjects(parsed: dict) -> set[str]:
    return {
        b["subject"]
        for b in typed_blocks(parsed, "resource", "azurerm_federated_identity_credential").values()
    }


def expected_subjects() -> set[str]:
    """From the overlays' ServiceAccounts when they exist, else from the contract."""
    overlay_accounts = overlay_service_accounts()
    if overlay_accounts:
        return {f"system:serviceaccount:{ns}:{name}" for ns, name in overlay_accounts}
    return {f"system:serviceaccount:{NAMESPACE}:{sa}" for sa in SERVICE_ACCOUNTS}


def overlay_files(cloud: str) -> list[Path]:
    """The cloud's overlays plus the kustomize component they share."""
    kustomize = REPO / "kustomize"
    return sorted(kustomize.glob(f"overlays/*-{cloud}/**/*.yaml")) + sorted(
        kustomize.glob(f"components/{cloud}/**/*.yaml")
    )


def overlay_documents(cloud: str) -> list[dict]:
    docs = []
    for path in overlay_files(cloud):
        try:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue  # kustomize patches may be templated; the kustomize tests own their validity
    return docs


def overlay_service_accounts() -> set[tuple[str, str]]:
    found = set()
    for cloud in ("aws", "azure"):
        for doc in overlay_documents(cloud):
            if doc.get("kind") == "ServiceAccount":
                meta = doc.get("metadata") or {}
                found.add((meta.get("namespace", NAMESPACE), meta.get("name")))
    return found


# --------------------------------------------------------------------------- tests: parsing and layout


def test_every_tf_file_parses():
    files = tf_files()
    assert len(files) >= 20, f"expected the modules and envs, found {len(files)} .tf files"
    for path in files:
        assert isinstance(parse_text(path.read_text()), dict), path


def test_parser_rejects_broken_hcl():
    with pytest.raises(LarkError):
        parse_text('variable "x" {\n  type = string\n')


def test_each_module_follows_the_four_file_layout():
    dirs = [d for d in MODULES.iterdir() if d.is_dir()] + [d for d in ENVS.iterdir() if d.is_dir()]
    assert {d.name for d in MODULES.iterdir() if d.is_dir()} >= {"aws", "azure", "kserve-stack"}
    assert {d.name for d in ENVS.iterdir() if d.is_dir()} >= {"aws", "azure"}
    for directory in dirs:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (directory / name).is_file(), f"{directory.relative_to(REPO)} lacks {name}"


def test_roots_ship_examples():
    for env in ("aws", "azure"):
        root = ENVS / env
        assert (root / "terraform.tfvars.example").is_file()
        assert (root / "backend.hcl.example").is_file()
        # The example must set every variable without a default, with a name the root declares.
        example = parse_text((root / "terraform.tfvars.example").read_text())
        variables = blocks(parse_dir(root), "variable")
        assert set(example) <= set(variables), set(example) - set(variables)
        assert {v for v, b in variables.items() if "default" not in b} <= set(example)


# --------------------------------------------------------------------------- tests: variables


def test_every_variable_is_typed_described_and_validated():
    for directory in module_dirs():
        assert variable_problems(parse_dir(directory)) == [], directory.relative_to(REPO)


def test_variable_checker_catches_missing_type_description_validation():
    bad = parse_text('variable "a" {}\nvariable "b" {\n  type = string\n  description = "d"\n}\n')
    assert sorted(variable_problems(bad)) == ["a: no description", "a: no type", "b: no validation"]


# --------------------------------------------------------------------------- tests: wiring


@pytest.mark.parametrize("env", ["aws", "azure"])
def test_root_module_references_resolve(env):
    assert module_reference_problems(ENVS / env) == []


def test_reference_checker_catches_unknown_output(tmp_path):
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "outputs.tf").write_text('output "real" {\n  value = 1\n}\n')
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "main.tf").write_text(
        'module "c" {\n  source = "../child"\n  extra = 1\n}\n'
        'module "gone" {\n  source = "../nowhere"\n}\n'
        'module "reg" {\n  source = "terraform-aws-modules/vpc/aws"\n}\n'
        'output "o" {\n  value = module.c.imaginary\n}\n'
    )
    problems = module_reference_problems(tmp_path / "root")
    assert "module.c.imaginary: module declares no output imaginary" in problems
    assert "module c: passes unknown variable extra" in problems
    assert "module gone: source ../nowhere does not exist" in problems
    assert any(p.startswith("module reg: registry source") for p in problems)


def test_provider_versions_are_pinned_everywhere():
    versions_files = sorted(TF_ROOT.rglob("versions.tf"))
    assert len(versions_files) == 5
    for path in versions_files:
        assert provider_pin_problems(path.read_text()) == [], path.relative_to(REPO)


def test_provider_pin_checker_catches_open_ranges():
    text = 'terraform {\n  required_providers {\n    aws = {\n      source = "hashicorp/aws"\n      version = ">= 5.0"\n    }\n  }\n}\n'
    assert provider_pin_problems(text) == ["provider aws: version '>= 5.0' is not pinned with ~> or ="]


def test_overlay_facing_outputs_exist():
    aws = set(blocks(parse_dir(ENVS / "aws"), "output"))
    azure = set(blocks(parse_dir(ENVS / "azure"), "output"))
    assert aws >= {
        "predictor_role_arn",
        "transformer_role_arn",
        "models_bucket",
        "lake_bucket",
        "model_storage_uri",
        "lake_uri",
        "api_keys_secret_arn",
        "ecr_repository_url",
        "kubeconfig_command",
    }
    assert azure >= {
        "predictor_client_id",
        "transformer_client_id",
        "storage_account",
        "model_storage_uri",
        "lake_uri",
        "key_vault_name",
        "tenant_id",
        "acr_login_server",
        "kubeconfig_command",
    }


# --------------------------------------------------------------------------- tests: names the overlays use


def test_irsa_trust_names_exactly_the_three_service_accounts():
    parsed = parse_dir(MODULES / "aws")
    # The app's roles trust exactly the overlay accounts; the only other trust is the cluster autoscaler's.
    autoscaler = "system:serviceaccount:kube-system:cluster-autoscaler"
    assert irsa_subjects(parsed) == expected_subjects() | {autoscaler}
    # Each role trusts one account: the predictor role must not admit the transformer and vice versa.
    subjects = trust_subjects(parsed)
    roles = typed_blocks(parsed, "resource", "aws_iam_role")
    for component in ("predictor", "transformer", "batch"):
        assert subjects[f"app_trust[{component}]"] == {
            f"system:serviceaccount:{NAMESPACE}:lead-scoring-{component}"
        }
        assert (
            roles[component]["assume_role_policy"]
            == f'${{data.aws_iam_policy_document.app_trust["{component}"].json}}'
        )


def test_federated_credentials_name_exactly_the_three_service_accounts():
    parsed = parse_dir(MODULES / "azure")
    assert federated_subjects(parsed) == expected_subjects()
    for body in typed_blocks(parsed, "resource", "azurerm_federated_identity_credential").values():
        assert body["audience"] == ["api://AzureADTokenExchange"]
        assert body["issuer"] == "${azurerm_kubernetes_cluster.this.oidc_issuer_url}"
    cluster = typed_blocks(parsed, "resource", "azurerm_kubernetes_cluster")["this"]
    assert cluster["oidc_issuer_enabled"] is True and cluster["workload_identity_enabled"] is True
    provider = cluster["key_vault_secrets_provider"][0]
    assert provider["secret_rotation_enabled"] is True


def test_subject_checkers_see_a_wrong_name():
    snippet = parse_text(
        'data "aws_iam_policy_document" "t" {\n  statement {\n    condition {\n      test = "StringEquals"\n'
        '      variable = "${module.eks.oidc_provider}:sub"\n'
        '      values = ["system:serviceaccount:default:lead-scoring-predictor"]\n    }\n  }\n}\n'
        'resource "azurerm_federated_identity_credential" "f" {\n  subject = "system:serviceaccount:lead-scoring:typo"\n}\n'
    )
    assert irsa_subjects(snippet) != expected_subjects()
    assert federated_subjects(snippet) == {"system:serviceaccount:lead-scoring:typo"}
    keyed = parse_text(
        'locals {\n  ns = "lead-scoring"\n  sa = "lead-scoring-batchh"\n}\n'
        'data "aws_iam_policy_document" "t" {\n  for_each = { batch = local.sa }\n  statement {\n'
        '    condition {\n      test = "StringEquals"\n      variable = "${module.eks.oidc_provider}:sub"\n'
        '      values = ["system:serviceaccount:${local.ns}:${each.value}"]\n    }\n  }\n}\n'
    )
    assert trust_subjects(keyed) == {"t[batch]": {"system:serviceaccount:lead-scoring:lead-scoring-batchh"}}


def test_overlay_service_accounts_match_the_contract():
    # When the overlays exist, their ServiceAccounts are exactly the Terraform trusts.
    accounts = overlay_service_accounts()
    if accounts:
        assert {name for _, name in accounts} == set(SERVICE_ACCOUNTS)
        assert {ns for ns, _ in accounts} == {NAMESPACE}


def test_api_key_secret_names_match_contract_and_overlays():
    aws = typed_blocks(parse_dir(MODULES / "aws"), "resource", "aws_secretsmanager_secret")
    azure = typed_blocks(parse_dir(MODULES / "azure"), "resource", "azurerm_key_vault_secret")
    assert aws["api_keys"]["name"] == AWS_SECRET_NAME
    assert azure["api_keys"]["name"] == AZURE_SECRET_NAME
    module_outputs = blocks(parse_dir(MODULES / "aws"), "output")
    env_outputs = blocks(parse_dir(ENVS / "aws"), "output")
    assert module_outputs["api_keys_secret_name"]["value"] == "${aws_secretsmanager_secret.api_keys.name}"
    assert env_outputs["api_keys_secret_name"]["value"] == "${module.platform.api_keys_secret_name}"
    for cloud, secret in (("aws", AWS_SECRET_PLACEHOLDER), ("azure", AZURE_SECRET_NAME)):
        classes = [d for d in overlay_documents(cloud) if d.get("kind") == "SecretProviderClass"]
        if not classes:
            continue  # overlays not written yet
        assert {d["metadata"]["name"] for d in classes} == {"lead-scoring-api-keys"}
        # The base class lives in the component, env values in overlay patches: read every `objects`.
        objects = [o for d in classes for o in secret_provider_objects(d)]
        assert objects, f"{cloud}: SecretProviderClass lists no objects"
        assert {(o.get("objectName"), o.get("objectAlias")) for o in objects} == {(secret, "api-keys.yaml")}


def secret_provider_objects(doc: dict) -> list[dict]:
    """The `objects` parameter: a YAML list (AWS) or {array: [YAML strings]} (Azure)."""
    raw = ((doc.get("spec") or {}).get("parameters") or {}).get("objects")
    if not raw:
        return []
    loaded = yaml.safe_load(raw)
    if isinstance(loaded, dict) and "array" in loaded:
        return [yaml.safe_load(item) if isinstance(item, str) else item for item in loaded["array"]]
    return list(loaded)


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_every_overlay_placeholder_is_a_terraform_output(cloud):
    """Overlays mark Terraform-provided values as REPLACE_WITH_<OUTPUT NAME>; each must exist."""
    placeholders = set()
    for path in overlay_files(cloud):
        placeholders.update(re.findall(r"REPLACE_WITH_([A-Z0-9_]+)", path.read_text()))
    outputs = set(blocks(parse_dir(ENVS / cloud), "output"))
    missing = sorted(p.lower() for p in placeholders if p.lower() not in outputs)
    assert missing == [], f"overlay placeholders without a Terraform output in envs/{cloud}: {missing}"


def test_transformer_policy_writes_only_the_lake_prefix():
    parsed = parse_dir(MODULES / "aws")
    statements = typed_blocks(parsed, "data", "aws_iam_policy_document")["transformer"]["statement"]
    writes = [s for s in statements if any(a.startswith("s3:Put") for a in s["actions"])]
    assert writes and all(r.endswith("/${local.lake_prefix}*") for s in writes for r in s["resources"])
    assert not any("Delete" in a for s in statements for a in s["actions"])


def test_csi_driver_polls_for_rotation():
    main = (MODULES / "kserve-stack" / "main.tf").read_text()
    assert "enableSecretRotation = true" in main
    assert "rotationPollInterval" in main


# --------------------------------------------------------------------------- tests: formatting and checkov


def test_terraform_fmt_is_canonical():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform binary not installed; fmt check runs where it is")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TF_ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_skips_are_justified_and_centralised():
    lines = (TF_ROOT / ".checkov.yaml").read_text().splitlines()
    skip_lines = [i for i, line in enumerate(lines) if re.match(r"^\s*-\s*CKV", line)]
    assert skip_lines and len(skip_lines) <= 25
    for i in skip_lines:
        j = i - 1
        while j >= 0 and re.match(r"^\s*-\s*CKV", lines[j]):
            j -= 1  # consecutive skips may share one reason
        assert j >= 0 and lines[j].strip().startswith("#"), f"skip on line {i + 1} has no reason"
    for path in tf_files():
        assert "checkov:skip" not in path.read_text(), f"inline skip in {path}; put it in .checkov.yaml"


def test_checkov_passes():
    assert CHECKOV.exists(), "checkov missing: run `bash hack/install-tools.sh`"
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(TF_ROOT),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "--compact",
            "--config-file",
            str(TF_ROOT / ".checkov.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_kserve_default_deployment_mode_matches_the_manifests():
    # KServe 0.16+ names the mode "Knative" ("Serverless" is a deprecated alias); both places must say the same.
    release = typed_blocks(parse_dir(MODULES / "kserve-stack"), "resource", "helm_release")["kserve"]
    manifest = yaml.safe_load((REPO / "manifests" / "inferenceservice.yaml").read_text())
    mode = manifest["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    assert mode == "Knative"
    assert re.search(r'deploymentMode\s*=\s*"Knative"', str(release["values"]))


def test_azure_lake_writes_are_limited_to_each_identitys_prefix():
    """The transformer writes only under scores/ and the batch Job only under batch/ of the lake container, by one
    ABAC condition (a heredoc in locals, formatted with the prefix) that denies write, add and delete elsewhere."""
    parsed = parse_dir(MODULES / "azure")
    local = {key: value for block in parsed.get("locals", []) for key, value in block.items()}
    assignments = typed_blocks(parsed, "resource", "azurerm_role_assignment")
    template = local["lake_writes_only_under"]
    for action in ("blobs/write", "blobs/add/action", "blobs/delete"):
        assert (
            f"!(ActionMatches{{'Microsoft.Storage/storageAccounts/blobServices/containers/{action}'}})"
            in template
        )
    assert template.count("%s") == 1 and template.count("%") == 1  # format()'s one verb: the prefix
    assert "blobs:path] StringStartsWith '%s'" in template
    wanted = {
        "transformer_lake": ("transformer", "lake_prefix", "scores/"),
        "batch_lake": ("batch", "batch_prefix", "batch/"),
    }
    for name, (identity, prefix, value) in wanted.items():
        body = assignments[name]
        assert body["principal_id"] == f"${{azurerm_user_assigned_identity.{identity}.principal_id}}"
        assert body["scope"] == "${local.lake_container_scope}" and body["condition_version"] == "2.0"
        assert body["condition"] == f"${{format(local.lake_writes_only_under, local.{prefix})}}"
        assert local[prefix] == value
