"""Call the API with the official Kubernetes Python client and print what each call got, one
JSON object per line: {"call": ..., "status": HTTP status, "message": ..., "value": ...}.

Credentials: --kubeconfig FILE, --in-cluster (the ServiceAccount volume and
KUBERNETES_SERVICE_*), or --server URL --ca FILE [--token TOKEN] (no token: anonymous).
"""

import argparse
import json

from kubernetes import client, config
from kubernetes.client.rest import ApiException


def api_client(args):
    if args.kubeconfig:
        return config.new_client_from_config(config_file=args.kubeconfig)
    if args.in_cluster:
        config.load_incluster_config()
        return client.ApiClient()
    configuration = client.Configuration()
    configuration.host = args.server
    configuration.ssl_ca_cert = args.ca
    if args.token:
        configuration.api_key = {"authorization": args.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(configuration)


def report(call, action):
    try:
        value = action()
        print(json.dumps({"call": call, "status": 200, "value": value}), flush=True)
    except ApiException as e:
        try:
            message = json.loads(e.body).get("message", "")
        except (TypeError, ValueError):
            message = str(e.body)
        print(json.dumps({"call": call, "status": e.status, "message": message}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig")
    parser.add_argument("--in-cluster", action="store_true")
    parser.add_argument("--server")
    parser.add_argument("--ca")
    parser.add_argument("--token")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--pod", help="also read this pod")
    args = parser.parse_args()

    api = api_client(args)
    core = client.CoreV1Api(api)
    authn = client.AuthenticationV1Api(api)
    ns = args.namespace

    def whoami():
        review = authn.create_self_subject_review(
            client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
        )
        user = review.status.user_info
        return {"username": user.username, "groups": user.groups}

    report("whoami", whoami)
    report("list_configmaps", lambda: sorted(cm.metadata.name for cm in core.list_namespaced_config_map(ns).items))
    report(
        "create_configmap",
        lambda: core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="from-python"), data={"k": "v"})
        ).metadata.name,
    )
    report("list_secrets", lambda: len(core.list_namespaced_secret(ns).items))
    if args.pod:
        report("get_pod", lambda: core.read_namespaced_pod(args.pod, ns).metadata.name)


if __name__ == "__main__":
    main()
