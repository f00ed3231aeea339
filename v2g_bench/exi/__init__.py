"""v2g_bench.exi: own schema-informed EXI codec for ISO 15118 (see docs/exi-codec.md).

    from v2g_bench.exi import encode, decode          # dict <-> bytes, schema set or namespace
    from v2g_bench.exi import IEXICodecAdapter        # the stack's IEXICodec (no JVM)
"""
from __future__ import annotations

__all__ = ["encode", "decode", "IEXICodecAdapter", "EXIDecodeError", "EXIEncodeError", "EXIError"]


def __getattr__(name: str):
    # lazy: importing the package must not pull in iso15118 or build grammars
    if name in ("encode", "decode"):
        from v2g_bench.exi import codec

        return getattr(codec, name)
    if name == "IEXICodecAdapter":
        from v2g_bench.exi.iso15118_adapter import OwnEXICodec

        return OwnEXICodec
    if name in ("EXIDecodeError", "EXIEncodeError", "EXIError"):
        from v2g_bench.exi import errors

        return getattr(errors, name)
    raise AttributeError(name)
