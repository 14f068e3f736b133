"""``fedspec org``: this home's organization: create its identities, export its public bundle,
check a bundle received from another organization."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedspec.app.settings import usable_path
from fedspec.cli.context import State
from fedspec.cli.options import JsonOption
from fedspec.console.output import console, emit_json

app = typer.Typer(
    help="This home's organization: its own keys, its public bundle.", no_args_is_help=True
)


@app.command("init")
def init(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(metavar="ORG", help="The organization's name, e.g. org2")],
    nodes: Annotated[
        int, typer.Option("--nodes", min=1, max=64, help="Training nodes to create")
    ] = 2,
    host: Annotated[
        str, typer.Option("--host", help="Host name or IP its peer (or orderers) will listen on")
    ] = "127.0.0.1",
    orderers: Annotated[
        int,
        typer.Option(
            "--orderers",
            min=0,
            max=9,
            help="Make an ordering organization with this many orderers (no peer, no nodes)",
        ),
    ] = 0,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1024,
            max=65400,
            help="Port its peer will listen on (its chaincode listener, operations endpoint and "
            "chaincode server on the next three), or its first orderer (the others 10 apart)",
            show_default="7051 for a peer, 7050 for orderers",
        ),
    ] = None,
    raft: Annotated[
        bool,
        typer.Option(
            "--raft",
            help="A member that also runs a raft orderer of the channel (orderer0, at "
            "--port + 10), beside the ordering organization's",
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Create ORG's CA, TLS CA, admin, peer and nodes in this home; keys never leave it."""
    # Deferred: loads cryptography only when used.
    from fedspec.app.orgs import init_org

    state: State = ctx.obj
    folder = state.settings.ledger.consortium_dir
    record = init_org(folder, org, nodes=nodes, host=host, orderers=orderers, port=port, raft=raft)
    if json_out:
        emit_json({"path": str(folder), **record.to_json()})
        return
    console.print(f"organization [bold]{record.name}[/] ({record.kind}) created in {folder}")
    for role, names in record.identities.items():
        console.print(f"  {role}: {', '.join(names)}")
    console.print("  private keys: mode 0600, in this home only")
    console.print(f"next: [bold]fedspec org export --out {record.name}.bundle[/]")


@app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Bundle file to write", show_default="<ORG>.bundle"),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Write this organization's public bundle and print its fingerprint.

    The bundle holds certificates, the MSP id and endpoints, never a key; members compare
    the fingerprint out of band."""
    # Deferred: loads cryptography only when used.
    from fedspec.app.bundles import export_bundle, spaced, write_bundle

    state: State = ctx.obj
    bundle = export_bundle(state.settings.ledger.consortium_dir)
    target = usable_path(out, "--out") if out is not None else Path(f"{bundle.name}.bundle")
    write_bundle(bundle, target)
    if json_out:
        emit_json({"path": str(target), "org": bundle.name, "fingerprint": bundle.fingerprint})
        return
    console.print(f"{bundle.name}'s bundle written to [bold]{target}[/]")
    console.print(f"fingerprint: {spaced(bundle.fingerprint)}")


@app.command("inspect")
def inspect(
    bundle_file: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="A bundle another organization sent")
    ],
    json_out: JsonOption = False,
) -> None:
    """Check a received BUNDLE and print what it holds and its fingerprint.

    Refused: a private key anywhere, a certificate not issued by its CA, a malformed CA."""
    # Deferred: loads cryptography only when used.
    from fedspec.app.bundles import load_bundle, spaced

    bundle = load_bundle(usable_path(bundle_file, "BUNDLE"))
    roles = {r: bundle.names(r) for r in ("admin", "peer", "orderer", "client") if bundle.names(r)}
    if json_out:
        emit_json(
            {
                "org": bundle.name,
                "kind": bundle.kind,
                "host": bundle.host,
                "identities": roles,
                "endpoints": bundle.endpoints,
                "fingerprint": bundle.fingerprint,
            }
        )
        return
    console.print(f"{bundle.name} ({bundle.kind}), host {bundle.host}")
    for role, names in roles.items():
        console.print(f"  {role}: {', '.join(names)}")
    console.print(f"fingerprint: {spaced(bundle.fingerprint)}")
