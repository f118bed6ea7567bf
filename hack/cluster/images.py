"""The node's own images, built here without a registry or a Docker daemon, and their import into the
node's containerd.

`oci_archive` is the pure part: files in, an OCI image-layout tar out (one uncompressed layer, fixed
timestamps, so the same inputs give the same digests). The images:

* the pause image: Kubernetes' own ``build/pause/linux/pause.c`` from the k8s.io/kubernetes module,
  compiled statically with gcc (what ``registry.k8s.io/pause`` contains);
* CoreDNS: the binary hack/k8s/build.sh built (K8S_NODE=1);
* busybox: Debian's ``busybox-static`` (a shell, httpd, wget and nslookup for the smoke tests).

Images from Docker (the platform's) are imported with `import_from_docker`.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hack.cluster.layout import BUSYBOX_IMAGE, COREDNS_IMAGE, PAUSE_IMAGE, NodeLayout

NONROOT = "65532:65532"


@dataclass(frozen=True)
class ImageFile:
    """A file of the image: its bytes come from `source` (a host path) or `content`, or it is a symlink
    to `link`."""

    path: str  # absolute path inside the image
    source: Path | None = None
    link: str | None = None
    content: bytes | None = None
    mode: int = 0o755


@dataclass(frozen=True)
class ImageSpec:
    reference: str
    files: Sequence[ImageFile]
    entrypoint: Sequence[str]
    user: str = NONROOT
    env: Mapping[str, str] = field(default_factory=lambda: {"PATH": "/bin"})
    working_dir: str = "/"


def _layer(files: Sequence[ImageFile]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders = sorted({str(Path(f.path).parent) for f in files} - {"/"})
        for folder in folders:
            info = tarfile.TarInfo(folder.lstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for f in sorted(files, key=lambda f: f.path):
            info = tarfile.TarInfo(f.path.lstrip("/"))
            info.mtime, info.mode = 0, f.mode
            if f.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, f.link
                tar.addfile(info)
            else:
                data = f.content if f.content is not None else Path(str(f.source)).read_bytes()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def oci_archive(spec: ImageSpec) -> bytes:
    """The image as an OCI image-layout tar that `ctr images import` reads, named `spec.reference`."""
    layer_digest, layer = _blob(_layer(spec.files))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(spec.entrypoint),
            "User": spec.user,
            "WorkingDir": spec.working_dir,
            "Env": [f"{k}={v}" for k, v in spec.env.items()],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},  # uncompressed: diff id == digest
    }
    config_digest, config_blob = _blob(json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_blob),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
    }
    manifest_digest, manifest_blob = _blob(json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_blob),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": spec.reference,
                    "org.opencontainers.image.ref.name": spec.reference.rsplit(":", 1)[1],
                },
            }
        ],
    }
    entries = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index, sort_keys=True).encode(),
        **{
            f"blobs/sha256/{d.split(':')[1]}": b
            for d, b in (
                (layer_digest, layer),
                (config_digest, config_blob),
                (manifest_digest, manifest_blob),
            )
        },
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ------------------------------------------------------------------ the node's images


def pause_binary(layout: NodeLayout) -> Path:
    """Compile Kubernetes' pause.c (from the module cache of the version the node runs) statically."""
    out = layout.images_dir / "pause"
    if out.exists():
        return out
    source = _kubernetes_module_dir(layout) / "build" / "pause" / "linux" / "pause.c"
    out.parent.mkdir(parents=True, exist_ok=True)
    version = PAUSE_IMAGE.rsplit(":", 1)[1]
    _run(
        ["gcc", "-Os", "-Wall", "-Werror", "-static", f'-DVERSION="v{version}"', "-o", str(out), str(source)]
    )
    _run(["strip", str(out)])
    return out


def _kubernetes_module_dir(layout: NodeLayout) -> Path:
    result = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"],
        cwd=layout.repo / "hack" / "k8s" / "node",
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(
            f"cannot find the k8s.io/kubernetes module (run `make e2e-bin`): {result.stderr.strip()}"
        )
    return Path(result.stdout.strip())


def busybox_binary() -> Path:
    """Debian's statically linked busybox (installed on first use)."""
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "busybox-static"], capture_output=True, text=True
    )
    if installed.stdout != "install ok installed":
        _run(
            [
                "apt-get",
                "-o",
                "DPkg::Lock::Timeout=900",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "busybox-static",
            ]
        )
    return Path("/bin/busybox")


# What a statically linked glibc program needs to resolve names, services and users without loading
# NSS modules (busybox wget segfaults in an image without them).
BASE_FILES = (
    ImageFile(
        "/etc/nsswitch.conf",
        content=b"passwd: files\ngroup: files\nhosts: files dns\nservices: files\n",
        mode=0o644,
    ),
    ImageFile(
        "/etc/passwd",
        content=b"root:x:0:0:root:/:/bin/sh\nnonroot:x:65532:65532:nonroot:/:/bin/sh\n",
        mode=0o644,
    ),
    ImageFile("/etc/group", content=b"root:x:0:\nnonroot:x:65532:\n", mode=0o644),
    ImageFile("/etc/services", Path("/etc/services"), mode=0o644),
)


def node_images(layout: NodeLayout) -> list[ImageSpec]:
    busybox = busybox_binary()
    applets = _run([str(busybox), "--list"]).split()
    return [
        ImageSpec(PAUSE_IMAGE, [ImageFile("/pause", pause_binary(layout))], ["/pause"], user="65535:65535"),
        ImageSpec(
            COREDNS_IMAGE, [*BASE_FILES, ImageFile("/coredns", layout.bin_dir / "coredns")], ["/coredns"]
        ),
        ImageSpec(
            BUSYBOX_IMAGE,
            [
                *BASE_FILES,
                ImageFile("/bin/busybox", busybox),
                *(ImageFile(f"/bin/{a}", link="busybox") for a in applets if a != "busybox"),
            ],
            ["/bin/sh"],
        ),
    ]


def import_archive(layout: NodeLayout, archive: bytes) -> None:
    """Import an image archive into the node's containerd (namespace k8s.io, where the CRI looks)."""
    subprocess.run(
        ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io", "images", "import", "-"],
        input=archive,
        check=True,
        capture_output=True,
    )


def import_images(layout: NodeLayout, specs: Sequence[ImageSpec]) -> None:
    for spec in specs:
        import_archive(layout, oci_archive(spec))


def checkout_image_tag(repo: Path) -> str:
    """The Docker tag `make e2e` builds the platform's images under: one per checkout. Every other build
    (`make images`, `make test`, another checkout's) writes the released tag, and Docker's tags are
    machine-wide: one such build between this run's build and its import replaced the image under it."""
    return "e2e-" + hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:12]


def import_from_docker(layout: NodeLayout, built_as: Mapping[str, str]) -> None:
    """`docker save | ctr images import` for images built by Docker (the platform's), each then named in
    the node's containerd as the pods ask for it: `built_as` maps that name to the Docker reference that
    was built (the node's containerd is this checkout's own, so the released name is safe there)."""
    if shutil.which("docker") is None:
        raise RuntimeError("docker is not installed: the platform's images are built with Docker")
    ctr = ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io"]
    present = set(_run([*ctr, "images", "ls", "-q"]).split())
    # The CRI names each image also by its config digest, which is Docker's image id: an image whose name
    # and id are both there is the same image, and is not imported again (a re-import costs minutes).
    missing = [
        built
        for built in built_as.values()
        if not {built, _run(["docker", "image", "inspect", "--format", "{{.Id}}", built]).strip()} <= present
    ]
    if missing:
        save = subprocess.Popen(["docker", "save", *missing], stdout=subprocess.PIPE)
        assert save.stdout is not None
        imported = subprocess.run(
            [*ctr, "images", "import", "-"], stdin=save.stdout, capture_output=True, text=True
        )
        save.stdout.close()
        if save.wait() != 0 or imported.returncode != 0:
            raise RuntimeError(f"importing {', '.join(missing)} failed: {imported.stderr.strip()}")
    for name, built in built_as.items():
        if name != built:
            _run([*ctr, "images", "tag", "--force", built, name])


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(command)}` failed (exit {result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout
