"""`fedspec node`: a member's own peer and chaincode server, from its own home.

What needs no Fabric network: where the peer listens comes from the home's `org init`
(`--port`, in its bundle), the ordering service from the ordering organization's bundle; the
refusals that come before anything starts are one line, exit 2, and leave nothing behind.
Starting a peer and joining it to a channel is tested on a real network
(tests/fabric/test_membership_on_fabric.py).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from cryptography import x509

from fabric_network import MemberLayout, OrderingLayout
from fedspec.app.bundles import export_bundle, load_bundle, write_bundle
from fedspec.app.consortium import create_consortium
from fedspec.app.node import member_layout
from fedspec.app.orgs import init_org
from fedspec.app.settings import Settings
from tests.fabric_support import free_port_block


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from fedspec.cli.app import main

    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def refused(result: tuple[int, str, str], code: str, fragment: str) -> None:
    got, _, err = result
    assert got == 2, (got, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fedspec: error: {code}: "), err
    assert fragment in lines[0], lines[0]


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int, int]:
    """org1's home, founded with org2 and an ordering organization from their bundles; the
    ports org1's peer and the orderers were given (nothing listens on either)."""
    for name in ("FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_CONSORTIUM", "FEDSPEC_FABRIC_PEERS"):
        monkeypatch.delenv(name, raising=False)
    peer_port, orderer_port = free_port_block(), free_port_block(30)
    init_org(tmp_path / "org1" / "consortium", "org1", nodes=1, port=peer_port)
    init_org(tmp_path / "org2" / "consortium", "org2", nodes=1)
    init_org(tmp_path / "ordering" / "consortium", "ordering", orderers=2, port=orderer_port)
    for org in ("org1", "org2", "ordering"):
        write_bundle(export_bundle(tmp_path / org / "consortium"), tmp_path / f"{org}.bundle")
    bundles = [load_bundle(tmp_path / f"{o}.bundle") for o in ("org1", "org2", "ordering")]
    create_consortium(tmp_path / "org1" / "consortium", bundles)
    return tmp_path / "org1", peer_port, orderer_port


def test_the_member_layout_comes_from_the_home_and_the_bundles(
    homes: tuple[Path, int, int],
) -> None:
    home, peer_port, orderer_port = homes
    member = member_layout(Settings.load(home, env={}))
    assert member.org == "org1" and member.run_dir == home / "node"
    assert member.own_peer.address == f"127.0.0.1:{peer_port}"
    assert member.ports() == {
        "org1 peer": peer_port,
        "org1 peer chaincode": peer_port + 1,
        "org1 peer operations": peer_port + 2,
        "org1 chaincode server": peer_port + 3,
    }
    assert member.orderer_addresses == [
        f"127.0.0.1:{orderer_port}",
        f"127.0.0.1:{orderer_port + 10}",
    ]
    # Its own keys, the ordering organization's TLS CA (a certificate only).
    assert (member.admin_dir("org1") / "msp" / "keystore" / "priv_sk").exists()
    assert b"PRIVATE KEY" not in member.tls_ca("ordering").read_bytes()


def test_no_ordering_service_is_refused_before_anything_starts(
    homes: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    home = homes[0]
    refused(run(capsys, "--home", str(home), "node", "up"), "NODE_NO_RAFT_MAJORITY", "no orderer")
    assert not (home / "node").exists()
    code, out, _ = run(capsys, "--home", str(home), "node", "status", "--json")
    assert code == 0 and json.loads(out)["state"] == "absent"


def test_a_port_in_use_is_refused_naming_it(
    homes: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    home, peer_port, _ = homes
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", peer_port + 2))
        holder.listen()
        refused(
            run(capsys, "--home", str(home), "node", "up"),
            "NODE_PORT_IN_USE",
            f"port {peer_port + 2} (org1 peer operations) is already in use",
        )
    assert not (home / "node").exists()


def test_a_minority_of_orderers_up_is_refused_as_no_raft_majority(
    homes: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    home, _, orderer_port = homes
    with socket.socket() as one:  # one of the ordering service's two orderers answers
        one.bind(("127.0.0.1", orderer_port))
        one.listen()
        refused(
            run(capsys, "--home", str(home), "node", "up"),
            "NODE_NO_RAFT_MAJORITY",
            "only 1 of the ordering service's 2 orderers answer",
        )
    assert not (home / "node").exists()


def test_the_ordering_organization_needs_the_founders_genesis_block(
    homes: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    root = homes[0].parent
    ordering = root / "ordering"
    bundles = [load_bundle(root / f"{o}.bundle") for o in ("org1", "org2", "ordering")]
    create_consortium(ordering / "consortium", bundles)
    layout = member_layout(Settings.load(ordering, env={}))
    assert isinstance(layout, OrderingLayout)
    assert [o.address for o in layout.orderers] == [
        f"127.0.0.1:{homes[2]}",
        f"127.0.0.1:{homes[2] + 10}",
    ]
    assert layout.ports()["orderer1 admin"] == homes[2] + 11
    refused(
        run(capsys, "--home", str(ordering), "node", "up"),
        "NODE_GENESIS_MISSING",
        "fedspec node genesis --out FILE",
    )
    (root / "not-a-block").write_bytes(b"\x00garbage")
    refused(
        run(capsys, "--home", str(ordering), "node", "up", "--genesis", str(root / "not-a-block")),
        "NODE_GENESIS_MISSING",
        "is not a Fabric block",
    )
    refused(
        run(capsys, "--home", str(ordering), "node", "up", "--genesis", str(root / "none")),
        "NODE_GENESIS_MISSING",
        "cannot read the genesis block",
    )
    assert not (ordering / "node").exists()


def test_down_with_nothing_started_stops_nothing(
    homes: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--home", str(homes[0]), "node", "down", "--json")
    assert code == 0 and json.loads(out) == {"stopped": [], "wiped": False}


def test_an_upgrade_of_a_node_not_started_is_refused_before_anything_starts(
    homes: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    home, _, _ = homes
    result = run(capsys, "--home", str(home), "node", "upgrade", "2.0")
    refused(result, "NODE_FAILED", "org1's node is absent: start it with `fedspec node up`")
    assert not (home / "node").exists()


def test_upgrades_alternate_the_chaincode_server_between_two_ports() -> None:
    from fabric_network import Peer

    peer = Peer.at("org1", "127.0.0.3:7051")
    assert peer.chaincode_address == "127.0.0.3:7054"
    assert [peer.chaincode_address_at(s) for s in (1, 2, 3, 4)] == [
        "127.0.0.3:7054",
        "127.0.0.3:7055",
        "127.0.0.3:7054",
        "127.0.0.3:7055",
    ]


def test_a_home_without_its_own_organization_or_consortium_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(
        run(capsys, "--home", str(tmp_path / "empty"), "node", "up"),
        "CONSORTIUM_INVALID",
        "org init",
    )
    init_org(tmp_path / "lone" / "consortium", "org9", nodes=1)
    refused(
        run(capsys, "--home", str(tmp_path / "lone"), "node", "status"),
        "CONSORTIUM_INVALID",
        "consortium create",
    )
    init_org(tmp_path / "ord" / "consortium", "ordering", orderers=1)
    refused(
        run(capsys, "--home", str(tmp_path / "ord"), "node", "up"),
        "CONSORTIUM_INVALID",
        "consortium create",
    )


def test_org_init_port_is_the_bundles_endpoint(tmp_path: Path) -> None:
    peer = init_org(tmp_path / "a", "org1", nodes=1, port=31000)
    assert peer.endpoints == {"peer0": "127.0.0.1:31000"}
    orderers = init_org(tmp_path / "b", "ordering", orderers=3, port=32000)
    assert orderers.endpoints == {
        "orderer0": "127.0.0.1:32000",
        "orderer1": "127.0.0.1:32010",
        "orderer2": "127.0.0.1:32020",
    }
    assert export_bundle(tmp_path / "a").endpoints == {"peer0": "127.0.0.1:31000"}


def test_a_member_that_runs_a_raft_orderer_of_its_own(tmp_path: Path) -> None:
    """`org init --raft`: the member's bundle declares its own orderer beside its peer, with a
    TLS certificate for its own host; every founder's consortium counts it as a consenter."""
    port = free_port_block(13)
    init_org(
        tmp_path / "org1" / "consortium", "org1", nodes=1, host="127.0.0.3", port=port, raft=True
    )
    init_org(
        tmp_path / "ordering" / "consortium", "ordering", orderers=1, host="127.0.0.2", port=port
    )
    for org in ("org1", "ordering"):
        write_bundle(export_bundle(tmp_path / org / "consortium"), tmp_path / f"{org}.bundle")
    bundles = [load_bundle(tmp_path / f"{o}.bundle") for o in ("org1", "ordering")]
    assert bundles[0].endpoints == {
        "peer0": f"127.0.0.3:{port}",
        "orderer0": f"127.0.0.3:{port + 10}",
    }
    create_consortium(tmp_path / "org1" / "consortium", bundles)
    member = member_layout(Settings.load(tmp_path / "org1", env={}))
    assert isinstance(member, MemberLayout)
    assert [(o.name, o.org, o.address) for o in member.orderers] == [
        ("orderer0", "org1", f"127.0.0.3:{port + 10}")
    ]
    assert member.orderer_addresses == [f"127.0.0.2:{port}", f"127.0.0.3:{port + 10}"]
    assert member.ports()["orderer0 admin"] == port + 11
    tls = x509.load_pem_x509_certificate(
        (member.orderer_dir("orderer0", "org1") / "tls" / "server.crt").read_bytes()
    )
    names = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.3" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    # The CA file a client verifies every orderer with: both organizations' TLS CAs.
    cas = member.orderer_tls_cas().read_bytes()
    assert member.tls_ca("org1").read_bytes() in cas
    assert member.tls_ca("ordering").read_bytes() in cas


# ---------------------------------------------------------------- hosts and certificates
def _found_org1(root: Path, host: str) -> Path:
    """org1's home, its peer on ``host``, founded with an ordering organization."""
    init_org(root / "org1" / "consortium", "org1", nodes=1, host=host, port=free_port_block())
    init_org(root / "ordering" / "consortium", "ordering", orderers=1, port=free_port_block(30))
    for org in ("org1", "ordering"):
        write_bundle(export_bundle(root / org / "consortium"), root / f"{org}.bundle")
    bundles = [load_bundle(root / f"{o}.bundle") for o in ("org1", "ordering")]
    create_consortium(root / "org1" / "consortium", bundles)
    return root / "org1"


def _peer_tls(home: Path) -> Path:
    return home / "consortium" / "peerOrganizations" / "org1" / "peers" / "peer0" / "tls"


def test_a_host_that_is_not_an_address_of_this_machine_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FEDSPEC_HOME", raising=False)
    home = _found_org1(tmp_path, "192.0.2.10")  # TEST-NET-1 (RFC 5737): nobody's address
    refused(
        run(capsys, "--home", str(home), "node", "up"),
        "NODE_HOST_NOT_LOCAL",
        "org1's host '192.0.2.10' (its `org init --host`, in its bundle) is not an address",
    )
    assert not (home / "node").exists()


def test_a_tls_certificate_for_another_host_is_refused_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FEDSPEC_HOME", raising=False)
    home = _found_org1(tmp_path / "here", "127.0.1.66")
    elsewhere = tmp_path / "elsewhere" / "consortium"
    init_org(elsewhere, "org1", nodes=1, host="127.0.1.77")  # the same name, made for another host
    (_peer_tls(home) / "server.crt").write_bytes(
        (elsewhere / "peerOrganizations/org1/peers/peer0/tls/server.crt").read_bytes()
    )
    refused(
        run(capsys, "--home", str(home), "node", "up"),
        "NODE_CERTIFICATE_INVALID",
        "org1's peer0 TLS certificate",
    )
    err = run(capsys, "--home", str(home), "node", "up")[2]
    assert "127.0.1.77" in err and "not '127.0.1.66', where it listens" in err
    assert not (home / "node").exists()


def test_an_expired_certificate_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization

    monkeypatch.delenv("FEDSPEC_HOME", raising=False)
    home = _found_org1(tmp_path, "127.0.0.1")
    tls = _peer_tls(home)
    ca_dir = home / "consortium" / "peerOrganizations" / "org1" / "tlsca"
    ca_key = serialization.load_pem_private_key((ca_dir / "priv_sk").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((ca_dir / "tlsca-cert.pem").read_bytes())
    current = x509.load_pem_x509_certificate((tls / "server.crt").read_bytes())
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(ca.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(past - dt.timedelta(days=365))
        .not_valid_after(past)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (tls / "server.crt").write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    refused(
        run(capsys, "--home", str(home), "node", "up"),
        "NODE_CERTIFICATE_INVALID",
        f"org1's peer0 TLS certificate ({tls / 'server.crt'}) expired on {past:%Y-%m-%d}",
    )
    assert not (home / "node").exists()


def test_every_certificate_a_member_needs_is_checked_for_its_validity(tmp_path: Path) -> None:
    import datetime as dt

    from fabric_network import CertificateError
    from fabric_network.certificates import check_certificates

    home = _found_org1(tmp_path, "127.0.0.1")
    layout = member_layout(Settings.load(home, env={}))
    check_certificates(layout)  # as made: valid now, for its host
    with pytest.raises(CertificateError, match="expired on"):
        check_certificates(layout, now=dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(CertificateError, match=r"is not valid before .*check this host's clock"):
        check_certificates(layout, now=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    # Another organization's CA, expired: named, with what that organization must do.
    ordering_ca = layout.tls_ca("ordering")
    ordering_ca.write_bytes(b"not a certificate")
    with pytest.raises(CertificateError, match=r"ordering's TLS CA certificate .* is not a PEM"):
        check_certificates(layout)
