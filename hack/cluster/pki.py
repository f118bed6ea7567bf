"""The node's certificates: a cluster CA, a front-proxy CA for the aggregation layer, the service-account
signing key, a serving certificate for the API server and the kubelet, and a client certificate per
component (the identities kubeadm gives them, so the default RBAC roles apply unchanged).

`certificate_specs` is the pure part (who gets which name); `write_pki` generates the keys with the
`cryptography` package and writes PEM files. ECDSA P-256 throughout: key generation is instant even
on a busy machine, and every component here accepts it (service-account tokens are signed ES256).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hack.cluster.layout import NodeLayout

VALIDITY = dt.timedelta(days=365)
CLUSTER_CA = "ca"
FRONT_PROXY_CA = "front-proxy-ca"
FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class CertSpec:
    """One leaf certificate: its file stem, subject and what it may be used for."""

    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    server: bool = False
    client: bool = True
    issuer: str = CLUSTER_CA


def certificate_specs(layout: NodeLayout) -> list[CertSpec]:
    """Every leaf certificate the node needs, named as kubeadm names them."""
    service_names = tuple(
        f"kubernetes{suffix}"
        for suffix in ("", ".default", ".default.svc", f".default.svc.{layout.cluster_domain}")
    )
    return [
        CertSpec(
            "apiserver",
            "kube-apiserver",
            dns_names=("localhost", *service_names),
            ip_addresses=(layout.node_ip, "127.0.0.1", layout.kubernetes_service_ip),
            server=True,
            client=False,
        ),
        CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
        CertSpec("admin", "kubernetes-admin", ("system:masters",)),
        CertSpec("controller-manager", "system:kube-controller-manager"),
        CertSpec("scheduler", "system:kube-scheduler"),
        CertSpec("kube-proxy", "system:kube-proxy", ("system:node-proxier",)),
        CertSpec("kubelet-client", f"system:node:{layout.node_name}", ("system:nodes",)),
        CertSpec(
            "kubelet",
            layout.node_name,
            dns_names=(layout.node_name, "localhost"),
            ip_addresses=(layout.node_ip, "127.0.0.1"),
            server=True,
            client=False,
        ),
        CertSpec(FRONT_PROXY_CLIENT, FRONT_PROXY_CLIENT, issuer=FRONT_PROXY_CA),
    ]


def write_pki(layout: NodeLayout) -> None:
    """Generate both CAs, the service-account key pair and every leaf of `certificate_specs` into
    ``layout.pki_dir`` (private keys mode 0600)."""
    folder = layout.pki_dir
    folder.mkdir(parents=True, exist_ok=True)
    cas = {ca: _write_ca(folder, ca) for ca in (CLUSTER_CA, FRONT_PROXY_CA)}
    sa_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(folder / "sa.key", sa_key)
    (folder / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for spec in certificate_specs(layout):
        ca_cert, ca_key = cas[spec.issuer]
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(folder / f"{spec.name}.key", key)
        (folder / f"{spec.name}.crt").write_bytes(
            _leaf(spec, key, ca_cert, ca_key).public_bytes(serialization.Encoding.PEM)
        )


def serving_certificate(layout: NodeLayout, name: str, dns_names: tuple[str, ...]) -> tuple[bytes, bytes]:
    """A server certificate for an in-cluster Service (a webhook), signed by the cluster CA: its PEM
    certificate and key. The CA must exist (`write_pki`)."""
    ca_cert = x509.load_pem_x509_certificate((layout.pki_dir / f"{CLUSTER_CA}.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((layout.pki_dir / f"{CLUSTER_CA}.key").read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"the cluster CA key in {layout.pki_dir} is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    spec = CertSpec(name, dns_names[0], dns_names=dns_names, server=True, client=False)
    cert = _leaf(spec, key, ca_cert, ca_key)
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def certificates_with_own_ca(ca_name: str, dns_names: tuple[str, ...]) -> dict[str, bytes]:
    """A fresh CA named `ca_name` and a server-and-client certificate for `dns_names` signed by it, as
    the PEM entries of a cert-controller secret (ca.crt, ca.key, tls.crt, tls.key).

    For a controller that keeps such a secret itself (KEDA's certificate rotator): it finds the secret
    valid and keeps it, instead of writing its own and exiting so that its pod restarts. The CA is its
    own (its key sits in the secret), never the cluster CA. The rotator checks the CA by the name
    `ca_name`, so the CA carries it as a DNS name too, and it reads the CA key as PKCS #1 RSA only
    (`x509.ParsePKCS1PrivateKey`), so these keys are RSA."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        _builder(subject, subject, ca_key, ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(ca_name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spec = CertSpec(ca_name, dns_names[0], dns_names=dns_names, server=True, client=True)
    pkcs1 = serialization.PrivateFormat.TraditionalOpenSSL
    return {
        "ca.crt": ca_cert.public_bytes(serialization.Encoding.PEM),
        "ca.key": ca_key.private_bytes(serialization.Encoding.PEM, pkcs1, serialization.NoEncryption()),
        "tls.crt": _leaf(spec, key, ca_cert, ca_key).public_bytes(serialization.Encoding.PEM),
        "tls.key": key.private_bytes(serialization.Encoding.PEM, pkcs1, serialization.NoEncryption()),
    }


def _write_ca(folder: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"fraudops-e2e-{name}")])
    cert = (
        _builder(subject, subject, key, ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(folder / f"{name}.key", key)
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _leaf(
    spec: CertSpec,
    key: PrivateKey,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
) -> x509.Certificate:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in spec.organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name))
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if spec.server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if spec.client else []
    )
    builder = (
        _builder(x509.Name(attributes), ca_cert.subject, key, ca=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in spec.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _builder(subject: x509.Name, issuer: x509.Name, key: PrivateKey, ca: bool) -> x509.CertificateBuilder:
    """What every certificate here has: names, key, validity (from five minutes ago, for clock skew),
    basic constraints and key usage."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(ca=ca), critical=True)
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    """Signatures only (ECDSA keys never encipher); a CA also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(_key_pem(key))
