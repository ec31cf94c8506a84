"""xDS protocol conformance of mcp-healthd --xds, with a client written from
Envoy's own API protos (PyPI `xds-protos`) and grpcio, against the real binary:
a named subscription, ACK, a push on change, NACK (logged, nothing resent, the
next change pushed), stale nonces, unsubscribe and resubscribe, the wildcard,
the EDS service without ADS, and the delta (incremental) flow with removals and
a reconnect that presents the versions it has.
"""

from __future__ import annotations

import queue
import subprocess
import tempfile
import textwrap
import threading
from pathlib import Path

import grpc
import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.endpoint.v3 import eds_pb2_grpc
from google.rpc import status_pb2
from support import TARGET, free_port, free_port_run, wait_for

EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
CTL = TARGET / "mcp-healthctl"
TOOLS = "mcp-health/tools"
OTHER = "mcp-health/other"
PATIENCE = 30


class Stream:
    """One bidirectional xDS stream: send requests, receive responses with a deadline."""

    def __init__(self, call_factory, node_id: str):
        self.requests: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        self.names: list[str] = []
        self.call = call_factory(iter(self.requests.get, None))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for r in self.call:
                self.responses.put(r)
        except grpc.RpcError as e:
            self.responses.put(e)

    def send(self, req):
        if hasattr(req, "resource_names"):
            self.names = list(req.resource_names)
        self.requests.put(req)

    def recv(self):
        r = self.responses.get(timeout=PATIENCE)
        if isinstance(r, Exception):
            raise r
        return r

    def close(self):
        self.requests.put(None)
        self.call.cancel()


def node(node_id: str):
    from envoy.config.core.v3 import base_pb2

    return base_pb2.Node(id=node_id, cluster="conformance")


def sotw(names, version="", nonce="", error=None, node_id=None):
    req = discovery_pb2.DiscoveryRequest(version_info=version, resource_names=names, type_url=EDS, response_nonce=nonce)
    if node_id:
        req.node.CopyFrom(node(node_id))
    if error:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return req


def clas(resp) -> dict[str, endpoint_pb2.ClusterLoadAssignment]:
    out = {}
    for any_ in resp.resources:
        assert any_.type_url == EDS
        cla = endpoint_pb2.ClusterLoadAssignment()
        any_.Unpack(cla)
        out[cla.cluster_name] = cla
    return out


def ports(cla) -> list[int]:
    return sorted(e.endpoint.address.socket_address.port_value for loc in cla.endpoints for e in loc.lb_endpoints)


def settled(cla, want: int) -> bool:
    """All `want` endpoints of the group are in. An apply is acknowledged
    before the debounced catalog has it, and a backend is withheld from Envoy
    until its first verdict (Envoy routes to a host of UNKNOWN health), so an
    earlier answer has fewer. None is ever UNKNOWN (health_status 0)."""
    eps = [e for loc in cla.endpoints for e in loc.lb_endpoints]
    assert all(e.health_status != 0 for e in eps), "a backend not probed yet reached Envoy"
    return len(eps) == want


def settle(s: Stream, r, name: str, want: int):
    """ACKs pushes until `name` has its `want` endpoints (fixtures then stay put)."""
    while name in clas(r) and not settled(clas(r)[name], want):
        s.send(sotw(list_names(s), r.version_info, r.nonce))
        r = s.recv()
    return r


def list_names(s: Stream) -> list[str]:
    return s.names


def spec(name: str, urls: list[str]) -> str:
    backends = "\n".join(f"  - {{name: b{i}, url: \"{u}\"}}" for i, u in enumerate(urls))
    return textwrap.dedent(f"name: {name}\npolicy: {{interval: 1s, timeout: 0.5s}}\nbackends:\n") + backends + "\n"


@pytest.fixture()
def daemon():
    tmp = Path(tempfile.mkdtemp())
    base = free_port_run(4)
    backends = subprocess.Popen([str(TARGET / "mcp-sample-backends"), "--base-port", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    log = tmp / "daemon.log"
    proc = subprocess.Popen([str(TARGET / "mcp-healthd"), "--xds", "--xds-debounce-ms", "20", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    server = f"127.0.0.1:{port}"
    wait_for("mcp-healthd up", lambda: subprocess.run([str(CTL), "--server", server, "groups"], capture_output=True).returncode == 0)

    def apply(name: str, urls: list[str]):
        f = tmp / f"{name}.yaml"
        f.write_text(spec(name, urls))
        out = subprocess.run([str(CTL), "--server", server, "apply", "-f", str(f)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

    url = lambda off: f"http://127.0.0.1:{base + off}/mcp"  # noqa: E731
    apply("tools", [url(0)])
    apply("other", [url(1)])
    channel = grpc.insecure_channel(server)
    yield {"channel": channel, "apply": apply, "url": url, "base": base, "log": log}
    channel.close()
    proc.terminate()
    proc.wait(timeout=20)
    backends.terminate()
    backends.wait(timeout=10)
    assert proc.returncode == 0, log.read_text()[-3000:]


def test_sotw_subscription_ack_nack_stale_and_resubscribe(daemon):
    ads = ads_pb2_grpc.AggregatedDiscoveryServiceStub(daemon["channel"])
    s = Stream(ads.StreamAggregatedResources, "conformance-sotw")
    base = daemon["base"]

    s.send(sotw([TOOLS], node_id="conformance-sotw"))
    r1 = settle(s, s.recv(), TOOLS, 1)
    assert (r1.type_url, list(clas(r1))) == (EDS, [TOOLS])
    assert ports(clas(r1)[TOOLS]) == [base]
    assert r1.version_info and r1.nonce

    # ACK, then a change of the group is pushed with a new version and nonce.
    s.send(sotw([TOOLS], r1.version_info, r1.nonce))
    # The added backend answers 401 (auth NONE: UNHEALTHY, but reached): it is
    # withheld until its verdict, then sent with the address its probe reached.
    daemon["apply"]("tools", [daemon["url"](0), daemon["url"](1)])
    r2 = s.recv()
    assert list(clas(r2)) == [TOOLS] and int(r2.version_info) > int(r1.version_info) and r2.nonce != r1.nonce
    r2 = settle(s, r2, TOOLS, 2)
    assert ports(clas(r2)[TOOLS]) == [base, base + 1]

    # NACK: logged with the node and the error; nothing is resent; the next change is pushed.
    s.send(sotw([TOOLS], r1.version_info, r2.nonce, error="conformance: rejected on purpose"))
    wait_for("NACK logged", lambda: "conformance: rejected on purpose" in daemon["log"].read_text())
    line = next(x for x in daemon["log"].read_text().splitlines() if "rejected on purpose" in x)
    assert "NACK" in line and "conformance-sotw" in line, line
    daemon["apply"]("tools", [daemon["url"](0)])
    r3 = s.recv()
    assert ports(clas(r3)[TOOLS]) == [base] and int(r3.version_info) > int(r2.version_info)

    # A request with a stale nonce is ignored, even its new names.
    s.send(sotw([TOOLS, OTHER], r3.version_info, r1.nonce))
    # Unsubscribe from everything, then subscribe again: the unchanged resource is resent.
    s.send(sotw([], r3.version_info, r3.nonce))
    s.send(sotw([TOOLS], r3.version_info, r3.nonce))
    r4 = s.recv()
    assert list(clas(r4)) == [TOOLS] and clas(r4)[TOOLS] == clas(r3)[TOOLS]

    # Adding a name (with the current nonce) sends just that resource.
    s.send(sotw([TOOLS, OTHER], r4.version_info, r4.nonce))
    r5 = s.recv()
    assert list(clas(r5)) == [OTHER], "the stale request's names were not taken"
    assert ports(clas(r5)[OTHER]) == [base + 1]

    # A name under the prefix without a group: an assignment with no endpoints.
    s.send(sotw([TOOLS, OTHER, "mcp-health/nope"], r5.version_info, r5.nonce))
    r6 = s.recv()
    assert list(clas(r6)) == ["mcp-health/nope"] and ports(clas(r6)["mcp-health/nope"]) == []
    s.close()
    text = daemon["log"].read_text()
    assert "xds stream opened" in text and "conformance-sotw" in text


def test_wildcard_and_the_eds_service(daemon):
    ads = ads_pb2_grpc.AggregatedDiscoveryServiceStub(daemon["channel"])
    s = Stream(ads.StreamAggregatedResources, "w")
    s.send(sotw([], node_id="conformance-wildcard"))
    r = s.recv()
    seen = clas(r)
    # Groups applied an instant ago, and their first verdicts, may come in later pushes.
    while sorted(seen) != [OTHER, TOOLS] or not all(settled(c, 1) for c in seen.values()):
        s.send(sotw([], r.version_info, r.nonce))
        r = s.recv()
        seen.update(clas(r))
    # A new group joins the wildcard.
    s.send(sotw([], r.version_info, r.nonce))
    daemon["apply"]("late", [daemon["url"](3)])
    r = s.recv()
    assert list(clas(r)) == ["mcp-health/late"]
    s.close()

    eds = eds_pb2_grpc.EndpointDiscoveryServiceStub(daemon["channel"])
    e = Stream(eds.StreamEndpoints, "e")
    req = sotw([OTHER], node_id="conformance-eds")
    req.type_url = ""  # implicit on the EDS service
    e.send(req)
    r = e.recv()
    assert list(clas(r)) == [OTHER] and r.type_url == EDS
    e.close()
    fetched = eds.FetchEndpoints(discovery_pb2.DiscoveryRequest(resource_names=[TOOLS], type_url=EDS))
    assert list(clas(fetched)) == [TOOLS]


def delta(sub=(), unsub=(), nonce="", error=None, initial=None, node_id=None):
    req = discovery_pb2.DeltaDiscoveryRequest(type_url=EDS, resource_names_subscribe=list(sub), resource_names_unsubscribe=list(unsub), response_nonce=nonce)
    if initial:
        req.initial_resource_versions.update(initial)
    if node_id:
        req.node.CopyFrom(node(node_id))
    if error:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return req


def test_delta_flow(daemon):
    ads = ads_pb2_grpc.AggregatedDiscoveryServiceStub(daemon["channel"])
    s = Stream(ads.DeltaAggregatedResources, "d")
    s.send(delta([TOOLS, "not-ours"], node_id="conformance-delta"))
    r = s.recv()
    assert [x.name for x in r.resources] == [TOOLS]
    assert list(r.removed_resources) == ["not-ours"], "a name outside the prefix does not exist"
    version = r.resources[0].version
    cla = endpoint_pb2.ClusterLoadAssignment()
    r.resources[0].resource.Unpack(cla)
    assert cla.cluster_name == TOOLS

    s.send(delta(nonce=r.nonce))  # ACK
    daemon["apply"]("tools", [daemon["url"](0), daemon["url"](1)])
    r = s.recv()
    assert [x.name for x in r.resources] == [TOOLS] and r.resources[0].version != version
    # NACK: logged, nothing resent.
    s.send(delta(nonce=r.nonce, error="delta rejected on purpose"))
    wait_for("delta NACK logged", lambda: "delta rejected on purpose" in daemon["log"].read_text())

    # Unsubscribing needs no answer; the stream ends.
    s.send(delta(unsub=[TOOLS]))
    s.close()

    # Wait until every endpoint has a verdict: the fixtures then keep the group as it is.
    eds = eds_pb2_grpc.EndpointDiscoveryServiceStub(daemon["channel"])
    wait_for("tools settled", lambda: settled(clas(eds.FetchEndpoints(discovery_pb2.DiscoveryRequest(resource_names=[TOOLS], type_url=EDS)))[TOOLS], 2))
    fresh = Stream(ads.DeltaAggregatedResources, "d3")
    fresh.send(delta([TOOLS], node_id="conformance-delta-fresh"))
    (res,) = fresh.recv().resources
    fresh.close()
    # A reconnect presenting that version gets an (empty) answer without the resource;
    # one presenting an old version gets the resource.
    again = Stream(ads.DeltaAggregatedResources, "d2")
    again.send(delta([TOOLS], initial={TOOLS: res.version}, node_id="conformance-delta-reconnect"))
    first = again.recv()
    assert list(first.resources) == [] and list(first.removed_resources) == [], first
    again.close()
    old = Stream(ads.DeltaAggregatedResources, "d4")
    old.send(delta([TOOLS], initial={TOOLS: version}, node_id="conformance-delta-old"))
    assert [(x.name, x.version) for x in old.recv().resources] == [(TOOLS, res.version)]
    old.close()
