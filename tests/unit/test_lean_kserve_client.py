"""kserve's Kubernetes API client stays out of the server until someone builds one (issue 17: ~0.1 s of every start,
~7 MB of RSS). Each check runs in a fresh interpreter: this test process has kserve loaded already."""

from __future__ import annotations

from tests.unit.test_pandas_kept_out import run_fresh


def test_kserve_comes_in_without_kubernetes_and_its_client_still_works_when_built():
    out = run_fresh(
        """
        import sys
        from transformer.serving import lean_kserve
        lean_kserve.import_kserve()
        kept_out = "kubernetes" not in sys.modules and "kserve.api.kserve_client" not in sys.modules
        import kserve
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "x",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        }
        client = kserve.KServeClient(config_dict=kubeconfig)  # the real client, real kubernetes underneath
        from kserve.api.kserve_client import KServeClient
        import kubernetes
        print(kept_out, type(client) is KServeClient, client.api_instance.api_client.configuration.host)
        """
    )
    assert out == "True True https://127.0.0.1:1"


def test_a_kserve_client_imported_before_kserve_is_left_alone():
    out = run_fresh(
        """
        import kserve.api.kserve_client as real
        from transformer.serving import lean_kserve
        lean_kserve.import_kserve()
        import kserve
        print(kserve.KServeClient is real.KServeClient)
        """
    )
    assert out == "True"
