"""Evaluates the rendered ValidatingAdmissionPolicy the way the API server does, with a real
CEL evaluator (cel-python), against sample admission requests. Used by kustomize-check.

The API server's order: a request outside `matchConstraints` is not matched; then every
`matchConditions` expression must be true (a false one: not matched, the request passes; an
error: the failure policy); then every validation must be true (false or an error: denied).
"""

import celpy
import celpy.celtypes as celtypes

# The label idle-scaler's slices carry, and the namespaces it never writes in.
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
PROTECTED = ("kube-system", "kube-public", "kube-node-lease")

_env = celpy.Environment()


def _evaluate(expression, activation):
    return _env.program(_env.compile(expression)).evaluate(activation)


def decide(policy, request):
    """`not_matched`, `allowed` or `denied` (with the failed validation's message)."""
    spec = policy["spec"]
    if not _in_constraints(spec["matchConstraints"], request):
        return "not_matched"
    activation = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(request.get("object")),
        "oldObject": celpy.json_to_cel(request.get("oldObject")),
    }
    for condition in spec.get("matchConditions", []):
        try:
            matched = _evaluate(condition["expression"], activation)
        except celpy.CELEvalError:
            return "denied" if spec.get("failurePolicy", "Fail") == "Fail" else "not_matched"
        if matched != celtypes.BoolType(True):
            return "not_matched"
    variables = {}
    for variable in spec.get("variables", []):
        activation["variables"] = celtypes.MapType(variables)
        variables[celtypes.StringType(variable["name"])] = _evaluate(variable["expression"], activation)
    activation["variables"] = celtypes.MapType(variables)
    for validation in spec["validations"]:
        try:
            ok = _evaluate(validation["expression"], activation)
        except celpy.CELEvalError:
            ok = False
        if ok != celtypes.BoolType(True):
            return f"denied: {validation.get('message', validation['expression'])}"
    return "allowed"


def _in_constraints(constraints, request):
    resource = request["resource"]
    for rule in constraints["resourceRules"]:
        if (_has(rule["apiGroups"], resource["group"])
                and _has(rule["apiVersions"], resource["version"])
                and _has(rule["resources"], resource["resource"])
                and _has(rule["operations"], request["operation"])):
            return True
    return False


def _has(values, value):
    return "*" in values or value in values


def _slice(name, namespace, labels):
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, **({"labels": labels} if labels is not None else {})},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 8081, "protocol": "TCP"}],
    }


def _request(user, operation, namespace, new=None, old=None):
    return {
        "operation": operation,
        "namespace": namespace,
        "name": (new or old)["metadata"]["name"],
        "resource": {"group": "discovery.k8s.io", "version": "v1", "resource": "endpointslices"},
        "userInfo": {"username": user, "groups": ["system:serviceaccounts", "system:authenticated"]},
        "object": new,
        "oldObject": old,
    }


def cases(account):
    """(what, request, expected decision prefix) for idle-scaler's `account` username."""
    ours = {MANAGED_BY: "idle-scaler", "kubernetes.io/service-name": "web",
            "idle-scaler.dev/deployment": "web"}
    parked = _slice("idle-scaler-web", "shop", ours)
    parked_v6 = _slice("idle-scaler-web-v6", "shop", ours)
    unlabelled = _slice("idle-scaler-web", "shop", {"kubernetes.io/service-name": "web"})
    controllers = {MANAGED_BY: "endpointslice-controller.k8s.io", "kubernetes.io/service-name": "web"}
    hand_written = _slice("web-manual", "shop", {"kubernetes.io/service-name": "web"})
    foreign_named = _slice("web-abcde", "shop", ours)
    in_kube_system = _slice("idle-scaler-kube-dns", "kube-system", ours)
    other = "system:serviceaccount:shop:deployer"
    return [
        ("idle-scaler creates its labelled slice idle-scaler-web in shop",
         _request(account, "CREATE", "shop", new=parked), "allowed"),
        ("idle-scaler creates its IPv6 slice", _request(account, "CREATE", "shop", new=parked_v6), "allowed"),
        ("idle-scaler re-points its own slice", _request(account, "UPDATE", "shop", new=parked, old=parked), "allowed"),
        ("idle-scaler deletes its own slice", _request(account, "DELETE", "shop", old=parked), "allowed"),
        ("idle-scaler creates idle-scaler-web without the label",
         _request(account, "CREATE", "shop", new=unlabelled), "denied"),
        ("idle-scaler creates a slice with the label of the EndpointSlice controller",
         _request(account, "CREATE", "shop", new=_slice("idle-scaler-web", "shop", controllers)), "denied"),
        ("idle-scaler creates a labelled slice not named idle-scaler-*",
         _request(account, "CREATE", "shop", new=foreign_named), "denied"),
        ("idle-scaler creates a labelled idle-scaler-* slice in kube-system",
         _request(account, "CREATE", "kube-system", new=in_kube_system), "denied"),
        *((f"idle-scaler creates a labelled idle-scaler-* slice in {ns}",
           _request(account, "CREATE", ns, new=_slice("idle-scaler-x", ns, ours)), "denied")
          for ns in PROTECTED if ns != "kube-system"),
        ("idle-scaler deletes a hand-written slice",
         _request(account, "DELETE", "shop", old=hand_written), "denied"),
        ("idle-scaler takes over a same-named slice it did not write by adding its label",
         _request(account, "UPDATE", "shop", new=parked, old=unlabelled), "denied"),
        ("idle-scaler removes its label from its slice",
         _request(account, "UPDATE", "shop", new=unlabelled, old=parked), "denied"),
        ("another account creates a hand-written slice",
         _request(other, "CREATE", "shop", new=hand_written), "not_matched"),
        ("another account deletes idle-scaler's slice",
         _request(other, "DELETE", "shop", old=parked), "not_matched"),
        ("a service account named idle-scaler in another namespace",
         _request("system:serviceaccount:shop:idle-scaler", "CREATE", "shop", new=hand_written), "not_matched"),
    ]
