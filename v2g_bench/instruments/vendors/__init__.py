"""Vendor drivers. Table-driven where the vendor's structure allows (see instruments/scpi/*.toml)."""
