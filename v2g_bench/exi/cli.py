"""`v2g-bench exi`: decode EXI to JSON and encode JSON to EXI with the own codec.

    v2g-bench exi decode 8034...            # tries every schema set, prints the one that matched
    v2g-bench exi decode msg.exi --schema iso20_dc --strict
    v2g-bench exi encode '{"SessionSetupReq": {...}}' --schema iso20_common
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from v2g_bench.exi.codec import NAMESPACE_TO_SET, decode, encode
from v2g_bench.exi.errors import EXIDecodeError, EXIError
from v2g_bench.exi.grammar_gen import SCHEMA_SETS

app = typer.Typer(help="ISO 15118 EXI codec (own, table-driven; grammars from the installed iso15118 XSDs).",
                  no_args_is_help=True)

# when no schema is given: most specific first (a -20 DC message also starts like a common one)
_ORDER = ["appprotocol", "iso20_dc", "iso20_ac", "iso20_common", "iso20_acdp", "iso20_wpt", "iso2", "din"]


def _read_bytes(src: str) -> bytes:
    p = Path(src)
    if p.is_file():
        raw = p.read_bytes()
        try:  # a file may hold hex text or raw EXI
            return bytes.fromhex(raw.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return raw
    try:
        return bytes.fromhex(src.strip().replace(" ", ""))
    except ValueError:
        raise typer.BadParameter(f"{src!r} is neither a file nor hex") from None


def _schema(name: str | None) -> str | None:
    if name is None:
        return None
    s = NAMESPACE_TO_SET.get(name, name)
    if s not in SCHEMA_SETS:
        raise typer.BadParameter(f"unknown schema {name!r}; use one of {', '.join(SCHEMA_SETS)}")
    return s


@app.command("decode")
def decode_cmd(src: str = typer.Argument(..., help="hex string, or a file with hex or raw EXI"),
               schema: str = typer.Option(None, "--schema", "-s", help="schema set or namespace; default: try all"),
               strict: bool = typer.Option(False, help="reject every deviation from the schema")) -> None:
    """Decode an EXI stream and print it as JSON (with the schema set that matched)."""
    data = _read_bytes(src)
    s = _schema(schema)
    candidates = [s] if s else _ORDER
    errors = []
    for c in candidates:
        try:
            msg = decode(data, c, strict=True if not s else strict)
        except EXIDecodeError as exc:
            errors.append(f"{c}: {exc}")
            continue
        typer.echo(json.dumps({"schema": c, "namespace": SCHEMA_SETS[c][1], "message": msg}, indent=2))
        return
    typer.echo("error: no schema set decodes this stream\n  " + "\n  ".join(errors), err=True)
    raise typer.Exit(2)


@app.command("encode")
def encode_cmd(src: str = typer.Argument("-", help="JSON text, a JSON file, or - for stdin"),
               schema: str = typer.Option(..., "--schema", "-s", help="schema set or namespace"),
               mode: str = typer.Option("jar", help="jar (byte-identical to the stack's codec) or cbv2g")) -> None:
    """Encode a JSON message ({"<Root>": {...}}) and print the EXI stream as hex."""
    if src == "-":
        text = sys.stdin.read()
    elif Path(src).is_file():
        text = Path(src).read_text()
    else:
        text = src
    try:
        msg = json.loads(text)
    except ValueError as exc:
        typer.echo(f"error: not valid JSON ({exc})", err=True)
        raise typer.Exit(2) from None
    try:
        typer.echo(encode(msg, _schema(schema), mode=mode).hex())
    except EXIError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
