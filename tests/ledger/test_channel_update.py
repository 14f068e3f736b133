"""The Fabric channel update for a membership change, built and checked without a network:
what the builder writes (read and write sets, the new organization's group), what a voter
refuses to sign (a stale update, another organization's certificates, another channel), and
the signatures and envelope that carry it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.msp import identities_pb2, msp_config_pb2, msp_principal_pb2
from fabric_protos.peer import configuration_pb2

from fedspec.app.bundles import export_bundle
from fedspec.app.orgs import init_org
from ledger_client import Consortium
from ledger_client.channel_update import (
    ORG_POLICY_ROLES,
    FabricChannelConfig,
    already_applied,
    check_update,
    msp_of,
    sign_update,
    signature_policy,
    update_envelope,
    update_for_change,
)
from ledger_client.errors import ChannelUpdateError, StaleChannelUpdateError
from ledger_client.identity import MspIdentity

FOUNDERS = ["org1", "org2", "org3"]
CHANNEL = "fedspec"
ROLE = {"admin": 1, "client": 2, "peer": 3}


def _founder_group(consortium: Consortium, org: str) -> Any:
    """A member's group as configtxgen writes it from an MSP folder with NodeOUs."""
    ca = consortium.ca_cert(consortium.org(org))
    ou = {
        name: msp_config_pb2.FabricOUIdentifier(certificate=ca, organizational_unit_identifier=role)
        for name, role in (
            ("client_ou_identifier", "client"),
            ("peer_ou_identifier", "peer"),
            ("admin_ou_identifier", "admin"),
            ("orderer_ou_identifier", "orderer"),
        )
    }
    msp = msp_config_pb2.FabricMSPConfig(
        name=org,
        root_certs=[ca],
        tls_root_certs=[consortium.tls_ca_cert(consortium.org(org))],
        crypto_config=msp_config_pb2.FabricCryptoConfig(
            signature_hash_family="SHA2", identity_identifier_hash_function="SHA256"
        ),
        fabric_node_ous=msp_config_pb2.FabricNodeOUs(enable=True, **ou),
    )
    group = configtx_pb2.ConfigGroup(version=0, mod_policy="Admins")
    group.values["MSP"].CopyFrom(
        configtx_pb2.ConfigValue(
            value=msp_config_pb2.MSPConfig(
                type=0, config=msp.SerializeToString()
            ).SerializeToString(),
            mod_policy="Admins",
        )
    )
    for name, roles in ORG_POLICY_ROLES.items():
        group.policies[name].CopyFrom(
            configtx_pb2.ConfigPolicy(
                policy=policies_pb2.Policy(
                    type=1, value=signature_policy(org, roles).SerializeToString()
                ),
                mod_policy="Admins",
            )
        )
    return group


def _config(consortium: Consortium, *, application_version: int = 2) -> FabricChannelConfig:
    app = configtx_pb2.ConfigGroup(version=application_version, mod_policy="Admins")
    for org in FOUNDERS:
        app.groups[org].CopyFrom(_founder_group(consortium, org))
    app.groups["org2"].version = 1  # its anchor peers were edited once
    app.values["Capabilities"].CopyFrom(configtx_pb2.ConfigValue(version=0, mod_policy="Admins"))
    for name in ("Admins", "Readers", "Writers", "Endorsement"):
        app.policies[name].CopyFrom(configtx_pb2.ConfigPolicy(version=0, mod_policy="Admins"))
    config = configtx_pb2.Config(sequence=3)
    config.channel_group.version = 0
    config.channel_group.groups["Application"].CopyFrom(app)
    config.channel_group.groups["Orderer"].CopyFrom(configtx_pb2.ConfigGroup(version=4))
    return FabricChannelConfig(CHANNEL, 7, config)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("org5") / "consortium"
    init_org(home, "org5", nodes=1)
    return export_bundle(home).to_json()


@pytest.fixture
def current(consortium_dir: Path) -> FabricChannelConfig:
    return _config(Consortium.load(consortium_dir))


def _add(bundle: dict[str, Any]) -> dict[str, Any]:
    return {"id": "org5:0", "action": "add", "org": "org5", "bundle": bundle}


def test_an_addition_reads_the_application_group_and_writes_the_new_group(
    current: FabricChannelConfig, bundle: dict[str, Any]
) -> None:
    update = configtx_pb2.ConfigUpdate.FromString(update_for_change(current, _add(bundle)))
    assert update.channel_id == CHANNEL
    assert list(update.read_set.groups) == list(update.write_set.groups) == ["Application"]
    assert update.read_set.version == update.write_set.version == 0
    read, write = update.read_set.groups["Application"], update.write_set.groups["Application"]
    # Read: every entry of the Application group at its current version, nothing more.
    assert read.version == 2 and read.mod_policy == ""
    assert {k: g.version for k, g in read.groups.items()} == {"org1": 0, "org2": 1, "org3": 0}
    assert all(g == configtx_pb2.ConfigGroup(version=g.version) for g in read.groups.values())
    assert set(read.values) == {"Capabilities"} and not read.values["Capabilities"].value
    assert set(read.policies) == {"Admins", "Readers", "Writers", "Endorsement"}
    # Write: the version bumped (so /Channel/Application/Admins must sign), the new group whole.
    assert write.version == 3 and write.mod_policy == "Admins"
    assert sorted(write.groups) == [*FOUNDERS, "org5"]
    assert all(write.groups[o] == read.groups[o] for o in FOUNDERS)
    assert write.values == read.values and write.policies == read.policies
    group = write.groups["org5"]
    assert group.version == 0 and group.mod_policy == "Admins"
    msp = msp_of(group)
    ca, tls_ca = bundle["ca"].encode(), bundle["tls_ca"].encode()
    assert msp.name == "org5" and list(msp.root_certs) == [ca]
    assert list(msp.tls_root_certs) == [tls_ca]
    assert msp.crypto_config.identity_identifier_hash_function == "SHA256"
    ous = msp.fabric_node_ous
    assert ous.enable
    assert {
        o.organizational_unit_identifier: o.certificate
        for o in (
            ous.client_ou_identifier,
            ous.peer_ou_identifier,
            ous.admin_ou_identifier,
            ous.orderer_ou_identifier,
        )
    } == dict.fromkeys(["client", "peer", "admin", "orderer"], ca)
    # Nothing of the member whose group it mirrors: no certificate of any founder.
    founders = [
        bytes(cert)
        for o in FOUNDERS
        for cert in (
            *msp_of(current.application.groups[o]).root_certs,
            *msp_of(current.application.groups[o]).tls_root_certs,
        )
    ]
    assert not any(cert in msp.SerializeToString() for cert in founders)
    anchors = configuration_pb2.AnchorPeers.FromString(group.values["AnchorPeers"].value)
    host, _, port = bundle["endpoints"]["peer0"].rpartition(":")
    assert [(a.host, a.port) for a in anchors.anchor_peers] == [(host, int(port))]
    assert group.values["MSP"].mod_policy == group.values["AnchorPeers"].mod_policy == "Admins"
    for name, roles in ORG_POLICY_ROLES.items():
        policy = group.policies[name]
        assert policy.mod_policy == "Admins" and policy.policy.type == policies_pb2.Policy.SIGNATURE
        envelope = policies_pb2.SignaturePolicyEnvelope.FromString(policy.policy.value)
        assert envelope.rule.n_out_of.n == 1
        assert [r.signed_by for r in envelope.rule.n_out_of.rules] == list(range(len(roles)))
        principals = [
            msp_principal_pb2.MSPRole.FromString(i.principal) for i in envelope.identities
        ]
        assert [(p.msp_identifier, p.role) for p in principals] == [
            ("org5", ROLE[r]) for r in roles
        ]


def test_a_removal_writes_the_application_group_without_the_organization(
    current: FabricChannelConfig,
) -> None:
    change = {"id": "org2:0", "action": "remove", "org": "org2"}
    update = configtx_pb2.ConfigUpdate.FromString(update_for_change(current, change))
    read, write = update.read_set.groups["Application"], update.write_set.groups["Application"]
    assert sorted(read.groups) == FOUNDERS
    assert sorted(write.groups) == ["org1", "org3"] and write.version == read.version + 1 == 3
    assert check_update(current, change, update_for_change(current, change)) == update
    with pytest.raises(ChannelUpdateError, match="not an organization"):
        update_for_change(current, {"id": "org9:0", "action": "remove", "org": "org9"})


def test_a_voter_refuses_a_stale_or_a_different_update(
    current: FabricChannelConfig, bundle: dict[str, Any], consortium_dir: Path
) -> None:
    change = _add(bundle)
    raw = update_for_change(current, change)
    assert check_update(current, change, raw).channel_id == CHANNEL
    # Another change was applied since: the Application group moved on.
    moved = _config(Consortium.load(consortium_dir), application_version=3)
    with pytest.raises(StaleChannelUpdateError, match="propose it again") as stale:
        check_update(moved, change, raw)
    assert stale.value.code == "CHANNEL_UPDATE_STALE"
    # The update adds org5 with another CA (the ordering organization's) than its bundle's.
    consortium = Consortium.load(consortium_dir)
    forged = {**bundle, "ca": consortium.ca_cert(consortium.orderer_org).decode()}
    with pytest.raises(ChannelUpdateError, match="do not sign it") as different:
        check_update(current, change, update_for_change(current, _add(forged)))
    assert different.value.code == "CHANNEL_UPDATE_INVALID"
    # A removal presented as the addition, another channel, bytes that are no update.
    removal = update_for_change(current, {"id": "org1:0", "action": "remove", "org": "org1"})
    with pytest.raises(ChannelUpdateError, match="do not sign it"):
        check_update(current, change, removal)
    other = FabricChannelConfig("other", current.block, current.config)
    with pytest.raises(ChannelUpdateError, match="for channel 'other'"):
        check_update(current, change, update_for_change(other, change))
    with pytest.raises(ChannelUpdateError):
        check_update(current, change, b"\xff\x01garbage")


def test_applied_is_read_from_the_configuration(
    current: FabricChannelConfig, bundle: dict[str, Any]
) -> None:
    assert not already_applied(current, _add(bundle))
    assert already_applied(current, {"id": "org9:0", "action": "remove", "org": "org9"})
    with_org1_as_org5 = {**bundle, "msp_id": "org1", "name": "org1"}
    with pytest.raises(ChannelUpdateError, match="another CA"):
        already_applied(
            current, {"id": "org1:0", "action": "add", "org": "org1", "bundle": with_org1_as_org5}
        )


def test_signatures_and_the_envelope_are_fabrics(
    current: FabricChannelConfig, bundle: dict[str, Any], consortium_dir: Path
) -> None:
    consortium = Consortium.load(consortium_dir)
    raw = update_for_change(current, _add(bundle))
    signatures = []
    for org in ("org1", "org2"):
        admin = consortium.identity(f"{org}/admin")
        signed = configtx_pb2.ConfigSignature.FromString(
            sign_update(raw, admin.identity, _signs_as(admin))
        )
        header = common_pb2.SignatureHeader.FromString(signed.signature_header)
        creator = identities_pb2.SerializedIdentity.FromString(header.creator)
        assert creator.mspid == org and len(header.nonce) == 24
        key = x509.load_pem_x509_certificate(bytes(creator.id_bytes)).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(  # raises unless it is the admin's signature over header ‖ update
            bytes(signed.signature),
            bytes(signed.signature_header) + raw,
            ec.ECDSA(hashes.SHA256()),
        )
        signatures.append(signed.SerializeToString())
    submitter = consortium.identity("org3/admin")
    envelope, tx_id = update_envelope(
        raw, signatures, CHANNEL, submitter.identity, _signs_as(submitter)
    )
    payload = common_pb2.Payload.FromString(envelope.payload)
    header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    assert header.type == common_pb2.CONFIG_UPDATE and header.channel_id == CHANNEL
    assert header.tx_id == tx_id
    carried = configtx_pb2.ConfigUpdateEnvelope.FromString(payload.data)
    assert carried.config_update == raw
    assert [s.SerializeToString() for s in carried.signatures] == signatures


def _signs_as(msp: MspIdentity) -> Callable[[bytes], bytes]:
    """Signs a message as ``msp`` (its signer takes the SHA-256 digest), as Gateway.sign does."""
    return lambda message: msp.signer(hashlib.sha256(message).digest())
