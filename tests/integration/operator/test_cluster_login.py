"""The operator's API client (cluster.py) against the real API server: it logs in with the
credentials Kopf reads itself (handlers.login), and a login the server no longer accepts (an
expired service-account token: 401) is renewed once, transparently to the caller."""

from __future__ import annotations

import kopf
import pytest
import yaml
from workerpool_operator.cluster import Cluster, Credentials
from workerpool_operator.errors import ApiUnavailable
from workerpool_operator.handlers import login

from tests.controlplane.harness import ControlPlane

pytestmark = pytest.mark.integration


@pytest.fixture
def valid(control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Credentials:
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    return login(kopf.OperatorSettings())


@pytest.fixture
def expired(control_plane: ControlPlane, valid: Credentials) -> Credentials:
    """A token-only login, as in a pod (a client certificate would authenticate on its own),
    with a token the API server rejects."""
    entry = yaml.safe_load(control_plane.kubeconfig.read_text())["clusters"][0]
    info = kopf.ConnectionInfo(
        server=valid.server, ca_data=entry["cluster"]["certificate-authority-data"], token="x"
    )
    return Credentials(info.server, info.as_ssl_context(), info.as_http_headers())


def test_a_rejected_token_is_renewed_by_a_new_login_and_the_call_succeeds(
    valid: Credentials, expired: Credentials
) -> None:
    logins = [expired, valid]
    cluster = Cluster(lambda: logins.pop(0))

    assert cluster.list_objects("v1", "Secret", "default", "app=no-such-app") == []
    assert logins == []  # logged in twice: at the start and after the 401


def test_a_token_still_rejected_after_the_new_login_is_an_api_error(expired: Credentials) -> None:
    cluster = Cluster(lambda: expired)

    with pytest.raises(ApiUnavailable) as caught:
        cluster.get_pool("default", "shop")
    assert caught.value.reason == "Http401"
