"""Checks of the rendered gateway-api overlay (deploy/overlays/gateway-api) beyond what every
rendering shares: the example Gateway and HTTPRoute, the waker's trusted gateway namespace,
and the NetworkPolicy peers of the waker and parking ports. Used by kustomize-check.

Each check names the overlay file to fix; `fail(what)` ends the run.
"""

# The example's names (deploy/overlays/gateway-api): the Gateway's namespace, which the waker
# trusts and the NetworkPolicy admits, and the label of the namespaces calling parked Services.
GATEWAY_NAMESPACE = "gateway"
CALLERS_LABEL = {"idle-scaler.dev/parking-callers": "true"}
GATEWAY_API = "gateway.networking.k8s.io/v1"
KINDS = {"Gateway", "HTTPRoute"}


def _namespace_peer(namespace):
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


# What the NetworkPolicy admits on each port: the fallback listener from the gateway's
# namespace; the parking ports from it and from the labelled callers' namespaces, nothing else.
WAKER_PEERS = [_namespace_peer(GATEWAY_NAMESPACE)]
PARKING_PEERS = [_namespace_peer(GATEWAY_NAMESPACE), {"namespaceSelector": {"matchLabels": CALLERS_LABEL}}]


def check(by_kind, container, fail):
    """Returns the number of checks made; calls `fail(what)` on the first that fails."""
    checks = 0

    def expect(cond, what):
        nonlocal checks
        checks += 1
        if not cond:
            fail(f"gateway-api: {what}")

    gateway, route = by_kind["Gateway"], by_kind["HTTPRoute"]
    expect(gateway["apiVersion"] == GATEWAY_API and route["apiVersion"] == GATEWAY_API,
           f"gateway.yaml: apiVersions {gateway['apiVersion']}, {route['apiVersion']}, not {GATEWAY_API}")
    expect(gateway["metadata"].get("namespace") == GATEWAY_NAMESPACE,
           f"gateway.yaml: the Gateway in {gateway['metadata'].get('namespace')}, not {GATEWAY_NAMESPACE}")
    listeners = gateway["spec"]["listeners"]
    expect([(l["protocol"], l["port"]) for l in listeners] == [("HTTP", 80)],
           f"gateway.yaml: listeners {listeners} (one plain HTTP listener: the waker reads HTTP)")

    # The route attaches to that Gateway, names a hostname and one Service backend with a port.
    route_ns = route["metadata"].get("namespace")
    expect(route_ns not in (None, GATEWAY_NAMESPACE), f"gateway.yaml: the HTTPRoute in {route_ns}")
    parent = {"name": gateway["metadata"]["name"], "namespace": GATEWAY_NAMESPACE}
    expect(route["spec"]["parentRefs"] == [parent],
           f"gateway.yaml: parentRefs {route['spec']['parentRefs']}, not {[parent]}")
    allowed = listeners[0].get("allowedRoutes", {}).get("namespaces", {}).get("from", "Same")
    expect(allowed in ("All", "Selector"), f"gateway.yaml: the listener admits routes from {allowed} only")
    expect(route["spec"].get("hostnames"), "gateway.yaml: the HTTPRoute has no hostnames")
    backends = [b for rule in route["spec"]["rules"] for b in rule["backendRefs"]]
    for backend in backends:
        expect(backend.get("kind", "Service") == "Service" and backend.get("group", "") == ""
               and "namespace" not in backend and isinstance(backend.get("port"), int),
               f"gateway.yaml: backendRef {backend} (a Service of the route's namespace, with a port)")
    expect(len(backends) == 1, f"gateway.yaml: backendRefs {backends}")

    # The waker trusts exactly the gateway's namespace.
    env = {e["name"]: e.get("value") for e in container["env"]}
    trusted = env.get("DEPLOY_SCALE_TO_ZERO_WAKER_GATEWAY_NAMESPACES")
    expect(trusted == GATEWAY_NAMESPACE,
           f"waker-patch.yaml: DEPLOY_SCALE_TO_ZERO_WAKER_GATEWAY_NAMESPACES={trusted}, not {GATEWAY_NAMESPACE}")
    expect("DEPLOY_SCALE_TO_ZERO_WAKER_TRUSTED_CIDRS" not in env,
           "waker-patch.yaml: trusted CIDRs set (the example's gateway runs in the pod network)")
    return checks
