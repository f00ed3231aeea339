"""The own EXI codec as a drop-in for the `iso15118` stack (its `IEXICodec` interface).

    from v2g_bench.exi.iso15118_adapter import make_codec, install
    codec = make_codec("own")        # or "jar" for the stack's Java codec
    EVCCHandler(evcc_config, iface, codec, ev_controller)   # the stack takes the codec as argument
    install()                        # or: set it process-wide in iso15118's EXI() singleton

Selecting "own" never starts a JVM: the stack only launches the jar when its EXI() singleton has no
codec (`EXI.get_exi_codec`) or when `ExificientEXICodec()` is constructed.
"""
from __future__ import annotations

import json

from iso15118.shared.iexi_codec import IEXICodec

from v2g_bench.exi.codec import Decoder, Encoder, get_grammar
from v2g_bench.exi.errors import EXIEncodeError, EXISchemaError
from v2g_bench.exi.grammar_gen import source_hash


class OwnEXICodec(IEXICodec):
    """IEXICodec over the table-driven codec. `mode`: "jar" (byte-identical, default) or "cbv2g";
    `strict`: the decoder rejects deviations (facet violations, untyped values, trailing bytes)."""

    def __init__(self, *, mode: str = "jar", strict: bool = False):
        self.mode, self.strict = mode, strict
        self._enc: dict[str, Encoder] = {}
        self._dec: dict[str, Decoder] = {}

    def _encoder(self, ns: str) -> Encoder:
        e = self._enc.get(ns)
        if e is None:
            e = self._enc[ns] = Encoder(get_grammar(ns), self.mode)
        return e

    def _decoder(self, ns: str) -> Decoder:
        d = self._dec.get(ns)
        if d is None:
            d = self._dec[ns] = Decoder(get_grammar(ns), strict=self.strict)
        return d

    def encode(self, message: str, namespace: str) -> bytes:
        try:
            obj = json.loads(message)
        except ValueError as exc:
            raise EXIEncodeError(f"message is not valid JSON ({exc})") from None
        return self._encoder(namespace).encode(obj)

    def decode(self, stream: bytes, namespace: str) -> str:
        return json.dumps(self._decoder(namespace).decode(bytes(stream)), separators=(",", ":"))

    def get_version(self) -> str:
        return f"v2g-bench-exi (grammars {source_hash()}, mode={self.mode}, strict={self.strict})"


def make_codec(name: str = "own", **options) -> IEXICodec:
    """The codec a bench profile selects: "own" (this codec, default options) or "jar"."""
    if name == "own":
        return OwnEXICodec(**options)
    if name == "jar":
        from iso15118.shared.exificient_exi_codec import ExificientEXICodec

        return ExificientEXICodec()
    raise EXISchemaError(f"unknown EXI codec {name!r}", where="bench profile: codec",
                         fix='use codec = "own" or codec = "jar"')


def install(codec: IEXICodec | None = None) -> IEXICodec:
    """Make `codec` (default: a new OwnEXICodec) the process-wide codec of iso15118's EXI()."""
    from iso15118.shared.exi_codec import EXI

    codec = codec or OwnEXICodec()
    EXI().set_exi_codec(codec)
    return codec
