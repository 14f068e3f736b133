"""Independent organizations: each makes its own keys, exports a public bundle, and founds the
consortium from bundles only (`fedspec org init|export|inspect`, `consortium create`)."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedspec.app.bundles import export_bundle, load_bundle, write_bundle
from fedspec.app.consortium import create_consortium, init_consortium
from fedspec.app.orgs import init_org
from fedspec.errors import ConsortiumError
from ledger_client import Consortium, IdentityError
from tests.member_homes import private_key_files

MEMBERS = ["org1", "org2", "org3"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from fedspec.cli.app import main

    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three members and an ordering organization, each in its own folder, with bundles."""
    root = tmp_path_factory.mktemp("orgs")
    homes = {}
    for org in [*MEMBERS, "ordering"]:
        home = root / org / "consortium"
        init_org(home, org, nodes=2, orderers=1 if org == "ordering" else 0)
        write_bundle(export_bundle(home), root / f"{org}.bundle")
        homes[org] = home
    return homes


def bundles(homes: dict[str, Path], order: list[str] | None = None) -> list:
    root = next(iter(homes.values())).parents[1]
    return [load_bundle(root / f"{o}.bundle") for o in (order or list(homes))]


def copy_home(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_each_home_holds_only_its_own_private_keys(homes: dict[str, Path]) -> None:
    for org, home in homes.items():
        keys = private_key_files(home)
        assert keys, org
        folder = "ordererOrganizations" if org == "ordering" else "peerOrganizations"
        for key in keys:
            assert key.is_relative_to(home / folder / org), key
            assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_a_bundle_holds_certificates_only_and_its_fingerprint_is_stable(
    homes: dict[str, Path],
) -> None:
    root = homes["org1"].parents[1]
    raw = (root / "org1.bundle").read_bytes()
    assert b"PRIVATE KEY" not in raw
    doc = json.loads(raw)
    assert {i["name"]: i["role"] for i in doc["identities"]} == {
        "admin": "admin",
        "peer0": "peer",
        "node0": "client",
        "node1": "client",
    }
    assert doc["endpoints"] == {"peer0": "127.0.0.1:7051"}
    assert load_bundle(root / "org1.bundle").fingerprint == export_bundle(homes["org1"]).fingerprint


def test_founders_with_the_same_bundles_get_the_same_configuration(
    homes: dict[str, Path], tmp_path: Path
) -> None:
    hashes_seen = set()
    for k, org in enumerate(MEMBERS):
        home = copy_home(homes[org], tmp_path / org)
        order = [*MEMBERS[k:], *MEMBERS[:k], "ordering"]  # each founder lists them differently
        founded = create_consortium(home, bundles(homes, order))
        hashes_seen.add(founded.config_hash)
        c = Consortium.load(home)
        assert sorted(c.member_ids) == MEMBERS and c.orderer_org.name == "ordering"
        assert c.own == [org] and c.default_admin == f"{org}/admin"
        assert c.identity(f"{org}/node1").id == f"{org}/node1"
        other = MEMBERS[(k + 1) % 3]
        with pytest.raises(IdentityError, match="stay in its own home"):
            c.identity(f"{other}/admin")
        # The other organizations are there as certificates only.
        assert all(f"/{org}/" in str(p) for p in private_key_files(home))
        assert (
            home / "peerOrganizations" / other / "users" / "node0" / "msp" / "signcerts"
        ).is_dir()
    assert len(hashes_seen) == 1


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("order", "fragment"),
    [
        (["org1", "org2", "org2", "ordering"], "two bundles for organization org2"),
        (["org1", "org2"], "exactly one ordering organization"),
        (["ordering"], "at least one member"),
        (["org2", "org3", "ordering"], "this home's organization org1 is not among the bundles"),
    ],
)
def test_a_founding_that_cannot_work_is_refused_and_writes_nothing(
    homes: dict[str, Path], tmp_path: Path, order: list[str], fragment: str
) -> None:
    home = copy_home(homes["org1"], tmp_path / "org1")
    before = _snapshot(home)
    with pytest.raises(ConsortiumError, match=fragment):
        create_consortium(home, bundles(homes, order))
    assert _snapshot(home) == before


def test_a_bundle_that_claims_to_be_this_homes_organization_is_refused(
    homes: dict[str, Path], tmp_path: Path
) -> None:
    impostor = tmp_path / "impostor"
    init_org(impostor, "org1", nodes=1)  # another org1, with other keys
    fake = export_bundle(impostor)
    home = copy_home(homes["org1"], tmp_path / "org1")
    before = _snapshot(home)
    others = bundles(homes, ["org2", "ordering"])
    with pytest.raises(ConsortiumError, match="does not match org1's own CA"):
        create_consortium(home, [fake, *others])
    assert _snapshot(home) == before


def test_org_init_refuses_a_second_organization_and_a_bad_name(homes: dict[str, Path]) -> None:
    with pytest.raises(ConsortiumError, match="already holds organization org1"):
        init_org(homes["org1"], "org9")
    with pytest.raises(ConsortiumError, match="must match"):
        init_org(homes["org1"].parent / "x", "Org 1")
    with pytest.raises(ConsortiumError, match="neither an IP address nor a host name"):
        init_org(homes["org1"].parent / "y", "org9", host="bad host!")


def test_the_one_machine_shortcut_is_the_same_steps(tmp_path: Path) -> None:
    root = init_consortium(["org1", "org2"], tmp_path / "c", nodes_per_org=1)
    c = Consortium.load(root)
    assert c.own == ["org1", "org2", "orderer"] and c.default_admin == "org1/admin"
    assert len(c.manifest["config_hash"]) == 64 and set(c.manifest["bundles"]) == {
        "org1",
        "org2",
        "orderer",
    }


# ---------------------------------------------------------------------- bad bundles
def _issue(
    ca_key_path: Path, ca_cert_path: Path, *, cn: str, ou: str, days: tuple[int, int]
) -> str:
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org1"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
                    x509.NameAttribute(NameOID.COMMON_NAME, cn),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _tampered(homes: dict[str, Path], how: str) -> dict:
    root = homes["org1"].parents[1]
    doc = json.loads((root / "org1.bundle").read_text())
    other = json.loads((root / "org2.bundle").read_text())
    org1 = homes["org1"] / "peerOrganizations" / "org1"
    node0 = next(i for i in doc["identities"] if i["name"] == "node0")
    if how == "private key":
        node0["cert"] += (org1 / "users/node0/msp/keystore/priv_sk").read_text()
    elif how == "forged certificate":
        node0["cert"] = next(i for i in other["identities"] if i["name"] == "node0")["cert"]
    elif how == "expired certificate":
        node0["cert"] = _issue(
            org1 / "ca/priv_sk", org1 / "ca/ca-cert.pem", cn="node0", ou="client", days=(-30, -1)
        )
    elif how == "a leaf as CA":
        doc["ca"] = node0["cert"]
    elif how == "malformed CA":
        doc["ca"] = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    elif how == "renamed identity":
        node0["name"] = "node7"
    elif how == "wrong format":
        doc["format"] = "fedspec-org-bundle-v0"
    return doc


@pytest.mark.parametrize(
    ("how", "fragment"),
    [
        ("private key", "holds a private key"),
        ("forged certificate", "node0's certificate was not issued by the bundle's CA"),
        ("expired certificate", "node0's certificate is not valid now"),
        ("a leaf as CA", "the CA is not a certificate authority"),
        ("malformed CA", "the CA cannot be parsed"),
        ("renamed identity", "names 'node0'"),
        ("wrong format", "is not a fedspec-org-bundle-v1 bundle"),
    ],
)
def test_a_bad_bundle_is_refused_in_one_line(
    homes: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    how: str,
    fragment: str,
) -> None:
    bad = tmp_path / "org1.bundle"
    bad.write_text(json.dumps(_tampered(homes, how)))
    with pytest.raises(ConsortiumError, match=fragment):
        load_bundle(bad)
    home = copy_home(homes["org2"], tmp_path / "org2")
    before = _snapshot(home)
    root = homes["org1"].parents[1]
    code, _, err = run(
        capsys,
        "--home",
        str(home.parent),
        "consortium",
        "create",
        "--member",
        str(bad),
        "--member",
        str(root / "org2.bundle"),
        "--member",
        str(root / "ordering.bundle"),
    )
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert lines[0].startswith("fedspec: error: CONSORTIUM_INVALID: "), lines[0]
    assert _snapshot(home) == before


def test_the_command_line_walks_one_organization_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("FEDSPEC_HOME", "FEDSPEC_CONSORTIUM", "FEDSPEC_LEDGER"):
        monkeypatch.delenv(name, raising=False)
    prints = {}
    for org, extra in [("org1", []), ("org2", []), ("ord", ["--orderers", "1"])]:
        assert run(capsys, "--home", org, "org", "init", org, "--nodes", "1", *extra)[0] == 0
        code, out, _ = run(capsys, "--home", org, "org", "export", "--json")
        assert code == 0
        prints[org] = json.loads(out)
        assert prints[org]["path"] == f"{org}.bundle"
    code, out, _ = run(capsys, "org", "inspect", "org2.bundle", "--json")
    assert json.loads(out)["fingerprint"] == prints["org2"]["fingerprint"]
    members = [a for o in prints for a in ("--member", f"{o}.bundle")]
    configs = set()
    for org in ("org1", "org2"):
        code, out, err = run(capsys, "--home", org, "consortium", "create", *members, "--json")
        assert code == 0, err
        configs.add(json.loads(out)["config_hash"])
        assert json.loads(out)["own"] == [org]
    assert len(configs) == 1
    code, _, err = run(capsys, "--home", "org1", "consortium", "create", *members)
    assert code == 2 and "already holds a founded consortium" in err
