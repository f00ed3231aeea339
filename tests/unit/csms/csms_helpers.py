"""Constants of the CSMS unit tests (a module of its own: `from conftest import …` is ambiguous when several
test folders run in one pytest session). The fixtures are in tests/unit/conftest.py."""
PASSWORD = "bench-password-0123"
