"""Volumes for the node's PersistentVolumeClaims: every couple of seconds, each claim of the default
StorageClass (``local``, provisioner ``fraudops.local/host-path``) that is Pending gets a hostPath
PersistentVolume in a folder of its own under ``.run/cluster/volumes``, bound to it by claimRef.

Why: a single-node cluster has no storage provider, and rancher's local-path-provisioner would be one
more Go build and image for what these few lines do. The folders go with the node at `down`.

    python -m hack.cluster.volume_provisioner <API server URL> <PKI folder> <volumes folder> [interval_s]
"""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

STORAGE_CLASS = "local"
PROVISIONER = "fraudops.local/host-path"


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Retain",  # the folders go with the node at `down`
        "volumeBindingMode": "Immediate",
    }


def volumes_to_create(claims: Iterable[Mapping[str, Any]], volumes_dir: Path) -> list[dict[str, Any]]:
    """A PersistentVolume for each Pending claim of our class that no volume serves yet (pure)."""
    wanted = []
    for claim in claims:
        meta, spec = claim["metadata"], claim["spec"]
        if claim.get("status", {}).get("phase") != "Pending" or spec.get("volumeName"):
            continue
        if spec.get("storageClassName") != STORAGE_CLASS:
            continue
        name = f"pvc-{meta['uid']}"
        wanted.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec["accessModes"],
                    "storageClassName": STORAGE_CLASS,
                    "persistentVolumeReclaimPolicy": "Retain",  # the folders go with the node
                    "hostPath": {"path": str(volumes_dir / name), "type": "DirectoryOrCreate"},
                    "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
                },
            }
        )
    return wanted


def _call(url: str, context: ssl.SSLContext, body: Mapping[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="GET" if body is None else "POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        return json.load(response)


def main(argv: list[str]) -> int:
    api_url, pki_dir, volumes_dir = argv[0], Path(argv[1]), Path(argv[2])
    interval_s = float(argv[3]) if len(argv) > 3 else 2.0
    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    volumes_dir.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            claims = _call(f"{api_url}/api/v1/persistentvolumeclaims", context)["items"]
            for volume in volumes_to_create(claims, volumes_dir):
                folder = Path(volume["spec"]["hostPath"]["path"])
                folder.mkdir(exist_ok=True)
                folder.chmod(0o777)  # pods run as any non-root uid; the folder is theirs
                _call(f"{api_url}/api/v1/persistentvolumes", context, volume)
                print(
                    f"volume-provisioner: {volume['metadata']['name']} for "
                    f"{volume['spec']['claimRef']['namespace']}/{volume['spec']['claimRef']['name']}",
                    flush=True,
                )
        except (OSError, ValueError) as exc:
            # A conflict (the volume exists already) or the API server restarting: look again next round.
            print(f"volume-provisioner: {exc}", file=sys.stderr, flush=True)
        time.sleep(interval_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
