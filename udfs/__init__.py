"""Operator logic as plain Python: parsing, routing, dead letters. No Flink imports here."""
