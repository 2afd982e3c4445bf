"""TLS and mutual TLS on the node's port, with signed calls still checked on top."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import Node, write_companies, write_policy


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class CA:
    """A throwaway certificate authority issuing node certificates for 127.0.0.1."""

    def __init__(self, folder: Path, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.path = folder / f"{name}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.folder = folder

    def issue(self, name: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(_name(name))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = self.folder / f"{name}.crt", self.folder / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("tls")
    ca = CA(folder, "data-space-ca")
    other_ca = CA(folder, "other-ca")
    prov_cert, prov_key = ca.issue("prov")
    cons_cert, cons_key = ca.issue("cons")
    rogue_cert, rogue_key = other_ca.issue("rogue")
    provider = Node(folder / "provider", "prov", "data.qingdao", extra_init=[
        "--tls-cert", prov_cert, "--tls-key", prov_key, "--tls-client-ca", ca.path,
        "--tls-peer-ca", ca.path])
    consumer = Node(folder / "consumer", "cons", "finance.qingdao", extra_init=[
        "--tls-cert", cons_cert, "--tls-key", cons_key, "--tls-client-ca", ca.path,
        "--tls-peer-ca", ca.path])
    # a consumer whose certificate comes from a CA the provider does not accept
    rogue = Node(folder / "rogue", "rogue", "finance.qingdao", extra_init=[
        "--tls-cert", rogue_cert, "--tls-key", rogue_key, "--tls-peer-ca", ca.path])
    # a consumer that does not speak TLS at all
    plain = Node(folder / "plain", "plain", "finance.qingdao")
    for node in (consumer, rogue, plain):
        provider.cli("peer add", node.card_file(), check=True)
        node.cli("peer add", provider.card_file(), check=True)
    provider.cli("dataset add", "companies", write_companies(folder / "c.csv", 1500),
                 "--classification", "internal", check=True)
    provider.cli("offer add", "credit", "--dataset", "companies", "--policy",
                 write_policy(folder / "p.toml"), check=True)
    provider.start()
    consumer.start()
    try:
        yield {"provider": provider, "consumer": consumer, "rogue": rogue, "plain": plain}
    finally:
        provider.stop()
        consumer.stop()


def test_status_speaks_tls_to_its_own_node(mtls: dict[str, Node]) -> None:
    assert mtls["provider"].cli("status", "--wait", "5").returncode == 0


def test_negotiate_and_fetch_over_mutual_tls(mtls: dict[str, Node]) -> None:
    consumer = mtls["consumer"]
    negotiated = consumer.cli("negotiate", "prov", "credit", "--purpose", "credit-scoring",
                              "--app", "scorer", check=True)
    agreement = negotiated.stdout.strip().splitlines()[-1]
    fetched = consumer.cli("fetch", agreement, "--json", check=True)
    assert '"rows": 1500' in fetched.stdout


@pytest.mark.parametrize("who", ["rogue", "plain"], ids=["certificate of another CA",
                                                          "no TLS at all"])
def test_a_trusted_peer_without_an_accepted_certificate_cannot_connect(
        mtls: dict[str, Node], who: str) -> None:
    result = mtls[who].cli("catalog", "prov")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: prov did not answer")
    assert "Traceback" not in result.stderr


def test_a_certificate_alone_is_not_enough_the_call_must_be_signed_by_a_trusted_node(
        mtls: dict[str, Node], tmp_path: Path) -> None:
    # same CA certificate as the trusted consumer, but a node key the provider never trusted
    consumer = mtls["consumer"]
    config = (consumer.home / "config.toml").read_text()
    stranger = Node(tmp_path / "stranger", "stranger", "finance.qingdao")
    (stranger.home / "config.toml").write_text(
        config.replace('name = "cons"', 'name = "stranger"'))
    stranger.cli("peer add", mtls["provider"].card_file(), check=True)
    result = stranger.cli("catalog", "prov")
    assert result.returncode == 3, result.stderr
    assert "not a trusted peer" in result.stderr
