"""`fedspec consortium init`: Fabric MSP folders, real CAs, safe re-runs."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from fedspec.app.consortium import init_consortium, parse_orgs
from fedspec.errors import ConsortiumError
from ledger_client import Consortium


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_layout_is_fabric_msp_with_node_ous(tmp_path: Path) -> None:
    root = init_consortium(["org1", "org2"], tmp_path / "c", nodes_per_org=3)
    c = Consortium.load(root)
    assert c.member_ids == ["org1", "org2"] and c.orderer_org.orderers == (
        "orderer0",
        "orderer1",
        "orderer2",
    )
    assert c.node_refs() == [f"org{o}/node{i}" for o in (1, 2) for i in range(3)]
    for ref, ou in [
        ("org1/node2", "client"),
        ("org2/admin", "admin"),
        ("org1/peer0", "peer"),
        ("orderer/orderer1", "orderer"),
    ]:
        msp = c.identity_dir(ref) / "msp"
        for sub in ("cacerts", "signcerts", "keystore", "tlscacerts"):
            assert len(list((msp / sub).iterdir())) == 1, (ref, sub)
        config = yaml.safe_load((msp / "config.yaml").read_text())
        assert config["NodeOUs"]["Enable"] is True
        assert config["NodeOUs"]["ClientOUIdentifier"]["OrganizationalUnitIdentifier"] == "client"
        cert = _cert(next((msp / "signcerts").iterdir()))
        ca = _cert(msp / "cacerts" / "ca-cert.pem")
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == ou
        key = next((msp / "keystore").iterdir())
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert c.identity(ref).id == ref
    tls = c.identity_dir("org1/peer0") / "tls"
    server = _cert(tls / "server.crt")
    server.verify_directly_issued_by(_cert(tls / "ca.crt"))
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert stat.S_IMODE((tls / "server.key").stat().st_mode) == 0o600
    # The signing CA and the TLS CA are different authorities.
    assert _cert(c.root / "peerOrganizations/org1/msp/cacerts/ca-cert.pem") != _cert(tls / "ca.crt")


def test_rerunning_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    root = init_consortium(["org1"], tmp_path / "c", nodes_per_org=1)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(ConsortiumError, match="--force"):
        init_consortium(["org1", "org2"], root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no staging folder left behind
    init_consortium(["org1", "org2"], root, force=True)
    assert Consortium.load(root).member_ids == ["org1", "org2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


@pytest.mark.parametrize("bad", ["", "Org1", "org1,org1", "orderer", "a b", "1org", ",,"])
def test_bad_organization_lists_are_refused(bad: str) -> None:
    with pytest.raises(ConsortiumError):
        parse_orgs(bad)


def test_missing_identities_are_reported_by_name(tmp_path: Path) -> None:
    from ledger_client import IdentityError

    with pytest.raises(IdentityError, match="not a consortium folder"):
        Consortium.load(tmp_path)
    root = init_consortium(["org1"], tmp_path / "c", nodes_per_org=1)
    c = Consortium.load(root)
    with pytest.raises(IdentityError, match="no identity"):
        c.identity("org1/node7")
    for key in (c.identity_dir("org1/node0") / "msp" / "keystore").iterdir():
        key.unlink()
    with pytest.raises(IdentityError, match="keystore"):
        c.identity("org1/node0")
