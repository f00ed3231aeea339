"""Fuzz campaign of every interface the bench faces (`make fuzz`); see docs/fuzzing.md."""
